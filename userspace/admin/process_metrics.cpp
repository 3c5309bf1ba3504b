// What every Prometheus exporter reports about itself, so dashboards and alerts written for any
// process (memory, fds, CPU, restarts) work for riskgated unchanged.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <riskgate/admin/metrics.h>
#include <riskgate/common/version.h>

namespace riskgate::metrics {

namespace {

struct ProcessStat {
  double start_time_seconds = 0;  // unix time
  double resident_bytes = 0;
};

// /proc/self/stat fields 22 (starttime, ticks since boot) and 24 (rss, pages).
ProcessStat read_stat()
{
  ProcessStat out;
  std::ifstream in("/proc/self/stat");
  std::string text;
  std::getline(in, text);                   // one line
  const auto after_name = text.rfind(')');  // the command name may hold spaces
  if (after_name == std::string::npos)
    return out;
  std::istringstream fields(text.substr(after_name + 2));
  std::string field;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  double boot_time = 0;
  std::ifstream proc_stat("/proc/stat");
  for (std::string key; proc_stat >> key;)
    if (key == "btime") {
      proc_stat >> boot_time;
      break;
    }
  for (int i = 3; fields >> field; ++i) {
    if (i == 22)
      out.start_time_seconds = boot_time + std::stod(field) / ticks;
    else if (i == 24)
      out.resident_bytes = std::stod(field) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  }
  return out;
}

double open_fds()
{
  std::error_code ec;
  double n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

}  // namespace

void watch_process(Registry &registry)
{
  registry
      .gauge_family("riskgate_build_info", "The build that runs (value 1): release and git commit",
                    {"version"})
      .with({version()})
      .set(1);
  auto &resident = registry.gauge("process_resident_memory_bytes", "Resident memory size in bytes");
  auto &fds = registry.gauge("process_open_fds", "Number of open file descriptors");
  auto &start =
      registry.gauge("process_start_time_seconds", "Start time of the process since the epoch in seconds");
  registry.add_collector([&resident, &fds, &start] {
    const ProcessStat stat = read_stat();
    resident.set(stat.resident_bytes);
    start.set(stat.start_time_seconds);
    fds.set(open_fds());
  });
}

}  // namespace riskgate::metrics
