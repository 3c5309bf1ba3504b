#include <riskgate/identity/feed.h>

#include <riskgate/common/thread_name.h>

namespace riskgate::identity {
namespace {

bool same_content(const RegistrySnapshot &a, const RegistrySnapshot &b)
{
  if (a.identities.size() != b.identities.size())
    return false;
  for (std::size_t i = 0; i < a.identities.size(); ++i) {
    const auto &x = a.identities[i];
    const auto &y = b.identities[i];
    if (x.id != y.id || x.name != y.name || x.cgroup_ids != y.cgroup_ids || x.cidrs != y.cidrs)
      return false;
  }
  return true;
}

}  // namespace

IdentityFeed::IdentityFeed(std::shared_ptr<WorkloadRegistry> registry, IdentityResolver *resolver, Sink sink,
                           IdentityFeedOptions options, Log log)
    : registry_(std::move(registry)),
      resolver_(resolver),
      sink_(std::move(sink)),
      options_(std::move(options)),
      log_(std::move(log))
{
}

IdentityFeed::~IdentityFeed()
{
  stop();
}

void IdentityFeed::report(const Result<void> &result)
{
  if (result || !log_)
    return;
  std::lock_guard lock(report_mu_);
  if (reported_.insert(result.error()).second)
    log_(result.error());
}

Result<bool> IdentityFeed::run_once(std::chrono::steady_clock::time_point now)
{
  fetch_once(now);
  return rescan_once();
}

void IdentityFeed::fetch_once(std::chrono::steady_clock::time_point now)
{
  std::lock_guard fetching(fetch_mu_);
  if (options_.kubernetes && (!next_kubernetes_ || now >= *next_kubernetes_)) {
    next_kubernetes_ = now + options_.kubernetes_interval;
    auto pods = list_node_pods(*options_.kubernetes);
    if (pods)
      registry_->set_kubernetes_pods(std::move(*pods));
    else
      report(make_error(pods.error() + " (previous pod list stays in force)"));
  }
  if (resolver_)
    report(resolver_->refresh());
}

Result<bool> IdentityFeed::rescan_once()
{
  std::lock_guard rescanning(rescan_mu_);
  if (auto polled = registry_->poll_static_file(); !polled)
    report(make_error(polled.error()));
  auto snapshot = registry_->rescan();
  if (!snapshot) {
    report(make_error(snapshot.error()));
    return make_error(snapshot.error());
  }
  for (const auto &warning : (*snapshot)->warnings) report(make_error(warning));
  if (last_sent_ && same_content(*last_sent_, **snapshot))
    return false;
  if (sink_) {
    if (auto sent = sink_(**snapshot); !sent) {
      report(sent);
      return make_error(sent.error());
    }
  }
  last_sent_ = *snapshot;
  return true;
}

void IdentityFeed::start()
{
  std::lock_guard lock(mu_);
  if (thread_.joinable())
    return;
  stop_ = false;
  thread_ = std::thread([this] {
    name_this_thread("rg-identity");
    std::unique_lock guard(mu_);
    while (!stop_) {
      fetch_now_ = false;
      guard.unlock();
      (void)run_once();
      guard.lock();
      wake_.wait_for(guard, options_.interval, [this] { return stop_ || fetch_now_; });
    }
  });
}

void IdentityFeed::fetch_soon()
{
  {
    std::lock_guard lock(mu_);
    fetch_now_ = true;
  }
  wake_.notify_all();
}

void IdentityFeed::stop()
{
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable())
    thread_.join();
}

}  // namespace riskgate::identity
