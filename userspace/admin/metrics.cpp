// Metric values and the Prometheus text exposition.
#include <riskgate/admin/metrics.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace riskgate::metrics {

namespace {

// Threads spread over the counter shards in the order they first count.
std::size_t shard_index()
{
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t index = next.fetch_add(1, std::memory_order_relaxed);
  return index;
}

std::size_t hash_labels(std::initializer_list<std::string_view> values)
{
  std::size_t h = 1469598103934665603ull;
  for (const auto v : values) {
    h ^= std::hash<std::string_view>{}(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  }
  return h;
}

bool same_labels(const std::vector<std::string> &stored, std::initializer_list<std::string_view> values)
{
  return std::equal(stored.begin(), stored.end(), values.begin(), values.end());
}

std::string escape_label(const std::string &value)
{
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double v)
{
  if (std::isinf(v))
    return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v))
    return "NaN";
  return fmt::format("{}", v);
}

std::string label_text(const std::vector<std::string> &names, const std::vector<std::string> &values,
                       const std::string &extra = {})
{
  std::string text;
  for (std::size_t i = 0; i < names.size(); ++i)
    text += fmt::format("{}{}=\"{}\"", text.empty() ? "" : ",", names[i], escape_label(values[i]));
  if (!extra.empty())
    text += (text.empty() ? "" : ",") + extra;
  return text.empty() ? "" : "{" + text + "}";
}

const char *type_name(Type type)
{
  switch (type) {
    case Type::counter: return "counter";
    case Type::gauge: return "gauge";
    case Type::histogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

void Counter::inc(std::uint64_t n)
{
  shards_[shard_index() % kShards].value.fetch_add(n, std::memory_order_relaxed);
}

std::uint64_t Counter::value() const
{
  std::uint64_t total = 0;
  for (const auto &shard : shards_) total += shard.value.load(std::memory_order_relaxed);
  return total;
}

void Counter::set_total(std::uint64_t total)
{
  shards_[0].value.store(total, std::memory_order_relaxed);
  for (std::size_t i = 1; i < kShards; ++i) shards_[i].value.store(0, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), buckets_(new std::atomic<std::uint64_t>[bounds_.size() + 1])
{
  std::sort(bounds_.begin(), bounds_.end());
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double value)
{
  const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  buckets_[static_cast<std::size_t>(at)].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::bucket_counts() const
{
  std::vector<std::uint64_t> counts(bounds_.size() + 1);
  for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = buckets_[i].load(std::memory_order_relaxed);
  return counts;
}

std::vector<double> exponential_buckets(double start, double factor, std::size_t count)
{
  std::vector<double> bounds;
  for (std::size_t i = 0; i < count; ++i, start *= factor) bounds.push_back(start);
  return bounds;
}

std::vector<double> linear_buckets(double start, double width, std::size_t count)
{
  std::vector<double> bounds;
  for (std::size_t i = 0; i < count; ++i) bounds.push_back(start + width * static_cast<double>(i));
  return bounds;
}

template <class Metric>
Family<Metric>::Family(std::string name, std::string help, std::vector<std::string> label_names, Type type,
                       std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      type_(type),
      bounds_(std::move(bounds)),
      slots_(new std::atomic<Series *>[kSlots])
{
  for (std::size_t i = 0; i < kSlots; ++i) slots_[i].store(nullptr, std::memory_order_relaxed);
}

template <class Metric>
Metric &Family<Metric>::with(std::initializer_list<std::string_view> label_values)
{
  const std::size_t hash = hash_labels(label_values);
  for (std::size_t probe = 0; probe < kSlots; ++probe) {
    Series *series = slots_[(hash + probe) % kSlots].load(std::memory_order_acquire);
    if (!series)
      break;
    if (same_labels(series->labels, label_values))
      return *series->metric;
  }
  return create(label_values, hash);
}

template <class Metric>
Metric &Family<Metric>::create(std::initializer_list<std::string_view> label_values, std::size_t hash)
{
  if (label_values.size() != label_names_.size())
    throw std::logic_error(fmt::format("metric {}: {} label values for {} label names", name_,
                                       label_values.size(), label_names_.size()));
  std::lock_guard lock(create_mutex_);
  // Another thread may have created it meanwhile; probing again under the mutex settles that.
  std::size_t free_slot = kSlots;
  for (std::size_t probe = 0; probe < kSlots; ++probe) {
    const std::size_t slot = (hash + probe) % kSlots;
    Series *series = slots_[slot].load(std::memory_order_acquire);
    if (!series) {
      free_slot = slot;
      break;
    }
    if (same_labels(series->labels, label_values))
      return *series->metric;
  }
  // Past the cap every new label set shares one "other" series, kept outside the probe table.
  const bool full = series_.size() >= kMaxSeries;
  const std::vector<std::string> other(label_names_.size(), "other");
  if (full)
    for (const auto &s : series_)
      if (s->labels == other)
        return *s->metric;
  auto series = std::make_unique<Series>();
  series->labels = full ? other : std::vector<std::string>(label_values.begin(), label_values.end());
  if constexpr (std::is_same_v<Metric, Histogram>)
    series->metric = std::make_unique<Histogram>(bounds_);
  else
    series->metric = std::make_unique<Metric>();
  Series *raw = series.get();
  series_.push_back(std::move(series));
  if (!full)
    slots_[free_slot].store(raw, std::memory_order_release);
  return *raw->metric;
}

template <class Metric>
void Family<Metric>::for_each(
    const std::function<void(const std::vector<std::string> &, const Metric &)> &f) const
{
  std::lock_guard lock(create_mutex_);
  for (const auto &series : series_) f(series->labels, *series->metric);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

namespace {

template <class F>
F &find_or_add(std::vector<std::unique_ptr<F>> &families, std::vector<std::string> &order,
               const std::string &name, std::function<std::unique_ptr<F>()> make,
               const std::vector<std::string> &names_in_use)
{
  for (auto &family : families)
    if (family->name() == name)
      return *family;
  if (std::find(names_in_use.begin(), names_in_use.end(), name) != names_in_use.end())
    throw std::logic_error(fmt::format("metric {} registered twice with different types", name));
  families.push_back(make());
  order.push_back(name);
  return *families.back();
}

}  // namespace

Family<Counter> &Registry::counter_family(const std::string &name, const std::string &help,
                                          std::vector<std::string> label_names)
{
  std::lock_guard lock(mutex_);
  return find_or_add<Family<Counter>>(
      counters_, order_, name,
      [&] { return std::make_unique<Family<Counter>>(name, help, std::move(label_names), Type::counter); },
      order_);
}

Family<Gauge> &Registry::gauge_family(const std::string &name, const std::string &help,
                                      std::vector<std::string> label_names)
{
  std::lock_guard lock(mutex_);
  return find_or_add<Family<Gauge>>(
      gauges_, order_, name,
      [&] { return std::make_unique<Family<Gauge>>(name, help, std::move(label_names), Type::gauge); },
      order_);
}

Family<Histogram> &Registry::histogram_family(const std::string &name, const std::string &help,
                                              std::vector<double> upper_bounds,
                                              std::vector<std::string> label_names)
{
  std::lock_guard lock(mutex_);
  return find_or_add<Family<Histogram>>(
      histograms_, order_, name,
      [&] {
        return std::make_unique<Family<Histogram>>(name, help, std::move(label_names), Type::histogram,
                                                   std::move(upper_bounds));
      },
      order_);
}

void Registry::add_collector(std::function<void()> collector)
{
  std::lock_guard lock(mutex_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::expose() const
{
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard lock(mutex_);
    collectors = collectors_;
  }
  for (const auto &collect : collectors) collect();

  std::lock_guard lock(mutex_);
  std::string out;
  auto header = [&](const auto &family) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", family.name(), family.help(), family.name(),
                       type_name(family.type()));
  };
  for (const auto &name : order_) {
    for (const auto &family : counters_)
      if (family->name() == name) {
        header(*family);
        family->for_each([&](const auto &labels, const Counter &c) {
          out += fmt::format("{}{} {}\n", name, label_text(family->label_names(), labels), c.value());
        });
      }
    for (const auto &family : gauges_)
      if (family->name() == name) {
        header(*family);
        family->for_each([&](const auto &labels, const Gauge &g) {
          out += fmt::format("{}{} {}\n", name, label_text(family->label_names(), labels),
                             format_value(g.value()));
        });
      }
    for (const auto &family : histograms_)
      if (family->name() == name) {
        header(*family);
        family->for_each([&](const auto &labels, const Histogram &h) {
          const auto counts = h.bucket_counts();
          std::uint64_t cumulative = 0;
          for (std::size_t i = 0; i < counts.size(); ++i) {
            cumulative += counts[i];
            const std::string le =
                i < h.upper_bounds().size() ? format_value(h.upper_bounds()[i]) : std::string("+Inf");
            out += fmt::format("{}_bucket{} {}\n", name,
                               label_text(family->label_names(), labels, fmt::format("le=\"{}\"", le)),
                               cumulative);
          }
          const auto text = label_text(family->label_names(), labels);
          out += fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, text, format_value(h.sum()), name, text,
                             cumulative);
        });
      }
  }
  return out;
}

}  // namespace riskgate::metrics
