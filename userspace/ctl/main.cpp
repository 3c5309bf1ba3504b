// riskgatectl: inspects and changes riskgate's state straight from the pinned BPF maps, so it works
// while riskgated is down. Exit codes: 0 ok, 1 error, 2 usage.
#include <cstdio>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

int main(int argc, char **argv)
{
  CLI::App app{"riskgatectl: inspect riskgate decisions, blocks, connections and counters"};
  app.require_subcommand(1);
  std::string pin_root = "/sys/fs/bpf/riskgate";
  std::string output = "table";
  app.add_option("--pin-root", pin_root, "bpffs directory of riskgate's pins")->default_val(pin_root);
  app.add_option("-o,--output", output, "output format")->check(CLI::IsMember({"table", "json"}))->default_val(output);

  auto *status = app.add_subcommand("status", "pinned maps and links, agent up or down");
  status->callback([&] {
    if (!std::filesystem::is_directory(pin_root)) {
      fmt::print(stderr, "riskgatectl: {} does not exist: riskgated has not run on this node (start it, "
                 "or pass --pin-root)\n", pin_root);
      throw CLI::RuntimeError(1);
    }
    for (const auto &entry : std::filesystem::directory_iterator(pin_root))
      fmt::print("{}\n", entry.path().filename().string());
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError &e) {
    return e.get_exit_code();
  } catch (const CLI::ParseError &e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return 0;
}
