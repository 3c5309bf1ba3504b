// Metrics for Prometheus: counters, gauges and histograms whose updates are lock-free (relaxed
// atomics, sharded per thread for counters), grouped in labelled families, and rendered in the
// Prometheus text format (0.0.4) on the admin HTTP port.
//
//   auto &requests = registry.counter_family("riskgate_requests_total", "Requests by outcome",
//                                            {"service", "action"});
//   requests.with({"orders", "allow"}).inc();   // lock-free once the series exists
//
// Values owned elsewhere (kernel per-CPU counters, queue drops) are copied in by collectors that
// run at scrape time, so nothing polls in the background.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace riskgate::metrics {

class Counter {
 public:
  void inc(std::uint64_t n = 1);
  std::uint64_t value() const;
  // For mirrors of counters kept elsewhere (collectors only): replaces the total.
  void set_total(std::uint64_t total);

 private:
  static constexpr std::size_t kShards = 8;
  struct alignas(64) Shard {
    std::atomic<std::uint64_t> value{0};
  };
  std::array<Shard, kShards> shards_;
};

class Gauge {
 public:
  void set(double value) { value_.store(value, std::memory_order_relaxed); }
  void add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void observe(double value);
  const std::vector<double> &upper_bounds() const { return bounds_; }
  std::vector<std::uint64_t> bucket_counts() const;  // per bucket (not cumulative), +Inf last
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<std::uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Bucket helpers: {start, start*factor, ...} count bounds; {start, start+width, ...}.
std::vector<double> exponential_buckets(double start, double factor, std::size_t count);
std::vector<double> linear_buckets(double start, double width, std::size_t count);

enum class Type { counter, gauge, histogram };

// One metric name with a fixed set of label names. Series are created on first use (under a mutex)
// and found lock-free afterwards; a family holds at most kMaxSeries label sets, further ones are
// folded into a series whose label values are all "other" (cardinality stays bounded).
template <class Metric>
class Family {
 public:
  static constexpr std::size_t kMaxSeries = 1024;
  Family(std::string name, std::string help, std::vector<std::string> label_names, Type type,
         std::vector<double> bounds = {});
  // The values are views, so finding an existing series allocates nothing (it runs per request).
  Metric &with(std::initializer_list<std::string_view> label_values);
  Metric &get() { return with({}); }

  const std::string &name() const { return name_; }
  const std::string &help() const { return help_; }
  const std::vector<std::string> &label_names() const { return label_names_; }
  Type type() const { return type_; }
  // Calls f(label values, metric) for each series, in creation order.
  void for_each(const std::function<void(const std::vector<std::string> &, const Metric &)> &f) const;

 private:
  struct Series {
    std::vector<std::string> labels;
    std::unique_ptr<Metric> metric;
  };
  Metric &create(std::initializer_list<std::string_view> label_values, std::size_t hash);

  std::string name_, help_;
  std::vector<std::string> label_names_;
  Type type_;
  std::vector<double> bounds_;
  static constexpr std::size_t kSlots = kMaxSeries * 2;  // open addressing, load <= 0.5
  std::unique_ptr<std::atomic<Series *>[]> slots_;
  mutable std::mutex create_mutex_;
  std::vector<std::unique_ptr<Series>> series_;  // guarded by create_mutex_
};

class Registry {
 public:
  Family<Counter> &counter_family(const std::string &name, const std::string &help,
                                  std::vector<std::string> label_names = {});
  Family<Gauge> &gauge_family(const std::string &name, const std::string &help,
                              std::vector<std::string> label_names = {});
  Family<Histogram> &histogram_family(const std::string &name, const std::string &help,
                                      std::vector<double> upper_bounds,
                                      std::vector<std::string> label_names = {});
  Counter &counter(const std::string &name, const std::string &help)
  {
    return counter_family(name, help).get();
  }
  Gauge &gauge(const std::string &name, const std::string &help) { return gauge_family(name, help).get(); }

  // Runs at every scrape, before rendering; copies values owned elsewhere into families.
  void add_collector(std::function<void()> collector);
  // Prometheus text exposition format 0.0.4.
  std::string expose() const;

 private:
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<Family<Counter>>> counters_;
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;
  std::vector<std::string> order_;  // family names in registration order
  std::vector<std::function<void()>> collectors_;
};

// riskgate_build_info{version} 1 and the standard process metrics (process_resident_memory_bytes,
// process_open_fds, process_start_time_seconds), read from /proc at scrape time.
void watch_process(Registry &registry);

}  // namespace riskgate::metrics
