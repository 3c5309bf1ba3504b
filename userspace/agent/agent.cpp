// riskgated's wiring: policy -> identity registry (fed to the kernel) -> resolver -> risk engine ->
// enforcer -> decision log and metrics, all behind the Gate that the proxy calls per request.
// Everything that is not per request runs here on the main thread or on the housekeeping thread.
#include "agent.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include <riskgate/admin/admin.h>
#include <riskgate/audit/decision_log.h>
#include <riskgate/policy/policy.h>
#include <riskgate/risk/engine.h>
#include <riskgate/common/thread_name.h>

#include "datapath_startup.h"
#include "gate.h"
#include "trusted_pairs.h"
#include <riskgate/enforce/map_enforcer.h>
#include <riskgate/identity/destinations.h>
#include <riskgate/identity/feed.h>
#include <riskgate/identity/kubernetes.h>
#include <riskgate/identity/registry.h>
#include <riskgate/identity/resolver.h>
#include <riskgate/kernel/datapath.h>
#include <riskgate/kernel/events.h>
#include <riskgate/kernel/mounts.h>
#include <riskgate/proxy/proxy.h>

namespace riskgate::agent {

namespace {

using std::chrono::steady_clock;

// --no-kernel: no kernel-attested identity, every peer is "world" unless the policy's CIDRs say more
// (the resolver still applies the registry's CIDRs to remote peers through the same interface).
class NoKernelPeers final : public PeerIdentitySource {
 public:
  IdentityId peer_identity(const sockaddr_storage &, const sockaddr_storage &, std::uint64_t) const override
  {
    return 0;
  }
};

int uninstall(const Options &options)
{
  auto removed = kernel::Datapath::uninstall(options.pin_root);
  if (!removed) {
    fmt::print(stderr, "riskgated: uninstall: {}\n", removed.error());
    return 1;
  }
  fmt::print("riskgated: removed {} pinned objects under {}\n", *removed, options.pin_root);
  return 0;
}

policy::LoadResult load_policy(const Options &options)
{
  return options.policy_dir.empty() ? policy::load_default() : policy::load_path(options.policy_dir);
}

// Listeners: the quick-start pair, then every Service that names a listener or a transparent port.
Result<proxy::ProxyConfig> build_proxy_config(const Options &options, const policy::PolicySet &set)
{
  proxy::ProxyConfig config;
  config.workers = options.workers;
  if (!options.listen.empty() || !options.upstream.empty()) {
    if (options.listen.empty() || options.upstream.empty())
      return make_error("--listen and --upstream go together");
    config.listeners.push_back(proxy::ListenerConfig{"gateway", options.listen, "gateway", false});
    config.upstreams.push_back(proxy::UpstreamConfig{"gateway", options.upstream});
  }
  for (const auto &service : set.services) {
    if (service.transparent_port) {
      config.listeners.push_back(proxy::ListenerConfig{
          service.name, fmt::format("127.0.0.1:{}", *service.transparent_port), "", true});
    } else if (!service.listen.empty()) {
      config.listeners.push_back(proxy::ListenerConfig{service.name, service.listen, service.name, false});
      config.upstreams.push_back(proxy::UpstreamConfig{service.name, service.upstream});
    }
  }
  return config;
}

// Whom each listener's requests call: a gateway's declared identity or upstream address (as the
// proxy resolved it at start), a transparent listener's original destinations.
std::vector<identity::DestinationService> destination_services(const proxy::ProxyConfig &config,
                                                               const policy::PolicySet &set)
{
  std::vector<identity::DestinationService> out;
  for (const auto &listener : config.listeners) {
    identity::DestinationService service{listener.service, {}, std::nullopt};
    for (const auto &declared : set.services)
      if (declared.name == listener.service)
        service.declared = declared.identity;
    for (const auto &upstream : config.upstreams)
      if (!listener.transparent && upstream.name == listener.upstream)
        if (auto address = proxy::parse_address(upstream.address))
          service.upstream = *address;
    out.push_back(std::move(service));
  }
  return out;
}

// Identity names for the engine's evidence, from the registry's current snapshot.
class RegistryNames final : public risk::IdentityNames {
 public:
  explicit RegistryNames(std::shared_ptr<const identity::WorkloadRegistry> registry)
      : registry_(std::move(registry))
  {
  }
  std::string name_of(IdentityId id) const override
  {
    const auto snapshot = registry_->snapshot();
    const auto *workload = snapshot ? snapshot->find(id) : nullptr;
    return workload ? workload->name : std::string();
  }

 private:
  std::shared_ptr<const identity::WorkloadRegistry> registry_;
};

struct Agent {
  const Options &options;
  steady_clock::time_point started = steady_clock::now();
  std::unique_ptr<kernel::Datapath> datapath;
  std::unique_ptr<PeerIdentitySource> peers;
  std::shared_ptr<identity::WorkloadRegistry> registry;
  std::unique_ptr<identity::IdentityResolver> resolver;
  std::unique_ptr<TrustedPairs> trusted_pairs;                    // the policy's fastPath pairs -> rg_trusted
  std::unique_ptr<identity::DestinationIdentities> destinations;  // whom requests call
  std::mutex destinations_mu;                                     // refreshes and their last error
  std::string destinations_error;
  std::unique_ptr<identity::IdentityFeed>
      identity_feed;                              // registry -> kernel maps, pods, JWKS/revocation reloads
  std::unique_ptr<RegistryNames> identity_names;  // for the engine's evidence
  std::unique_ptr<risk::Engine> engine;
  metrics::Registry metrics;
  std::unique_ptr<audit::DecisionMetrics> decision_metrics;
  std::unique_ptr<audit::DecisionLog> log;
  std::unique_ptr<enforce::MapEnforcer> enforcer;
  std::unique_ptr<kernel::EventReader> events;
  std::unique_ptr<admin::HttpServer> http;
  std::unique_ptr<admin::Socket> socket;
  std::unique_ptr<Gate> gate;
  std::unique_ptr<proxy::Proxy> proxy;
  proxy::ProxyConfig proxy_config;
  std::unique_ptr<risk::PolicyWatcher> watcher;

  // What GET /readyz answers.
  static constexpr int kStarting = 0, kReady = 1, kDraining = 2;
  std::atomic<int> state{kStarting};

  std::mutex housekeeping_mutex;
  std::condition_variable housekeeping_wake;
  bool stopping = false;
  std::thread housekeeping;

  explicit Agent(const Options &o) : options(o) {}

  Result<void> start();
  Result<void> start_datapath_and_peers();
  Result<void> start_identity();
  Result<void> start_deciding(const policy::PolicySet &set);
  Result<void> start_admin_http();
  Result<void> start_admin_socket();
  Result<void> start_policy_watch();
  Result<void> start_proxy();
  void start_background();
  void apply_policy(const policy::PolicySet &set);
  void refresh_destinations();
  void housekeeping_pass();
  nlohmann::json status() const;
  void stop();
};

void Agent::apply_policy(const policy::PolicySet &set)
{
  if (trusted_pairs)
    trusted_pairs->declare(set);
  else if (!set.risk_policies.empty() && !set.risk_policies.front().fast_path.empty())
    fmt::print(stderr, "riskgated: fastPath pairs not applied: no kernel datapath (--no-kernel)\n");
  if (auto ok = registry->set_policy_identities(set.identities); !ok)
    fmt::print(stderr, "riskgated: identities: {}\n", ok.error());
  (void)identity_feed->rescan_once();  // the feed logs each distinct error once
  // The feed syncs the pairs when the registry changed; a reload that changed only fastPath needs this.
  if (const auto snapshot = registry->snapshot(); trusted_pairs && snapshot)
    if (auto ok = trusted_pairs->sync(*snapshot); !ok)
      fmt::print(stderr, "riskgated: {}\n", ok.error());
  if (auto ok = resolver->configure(set.services); !ok)
    fmt::print(stderr, "riskgated: services: {} (the previous authentication settings stay)\n", ok.error());
  destinations->configure(destination_services(proxy_config, set));
  refresh_destinations();
  identity_feed->fetch_soon();  // keys for services the policy just added
}

// After the registry or the local listeners changed (each pass of the housekeeping) and on reloads.
// An error is logged once, not every second.
void Agent::refresh_destinations()
{
  std::lock_guard lock(destinations_mu);
  auto refreshed = destinations->refresh(*registry->snapshot());
  std::string error = refreshed ? std::string() : refreshed.error();
  if (!error.empty() && error != destinations_error)
    fmt::print(stderr, "riskgated: destination identities: {}\n", error);
  destinations_error = std::move(error);
}

// Datapath first: the registry adopts the ids the kernel already uses, so still-installed blocks
// keep naming the same workload.
Result<void> Agent::start_datapath_and_peers()
{
  if (options.no_kernel) {
    warn_no_kernel();
    peers = std::make_unique<NoKernelPeers>();
    return {};
  }
  auto started_datapath = start_datapath(options);
  if (!started_datapath)
    return make_error(started_datapath.error());
  datapath = std::move(*started_datapath);
  peers = std::make_unique<kernel::MapPeerIdentity>(datapath->maps());
  return {};
}

Result<void> Agent::start_identity()
{
  auto cgroup_root = kernel::cgroup2_root();
  if (!cgroup_root)
    return make_error(cgroup_root.error());
  registry = std::make_shared<identity::WorkloadRegistry>(*cgroup_root);
  if (datapath)
    if (auto names = datapath->maps().identity_names(); names)
      registry->adopt_ids(*names);
  if (!options.identity_file.empty())
    registry->set_static_file(options.identity_file);
  resolver = std::make_unique<identity::IdentityResolver>(*peers, registry);
  destinations = std::make_unique<identity::DestinationIdentities>();
  identity::IdentityFeedOptions feed_options;
  // In a cluster, the pods of this node become workloads (namespace + service account selectors).
  if (auto in_cluster = identity::KubernetesConfig::in_cluster(); in_cluster)
    feed_options.kubernetes = std::move(*in_cluster);
  else if (std::getenv("KUBERNETES_SERVICE_HOST"))
    fmt::print(stderr, "riskgated: kubernetes pods not read: {}\n", in_cluster.error());
  kernel::PinnedMaps *maps = datapath ? &datapath->maps() : nullptr;
  if (maps)
    trusted_pairs = std::make_unique<TrustedPairs>(*maps);
  identity_feed = std::make_unique<identity::IdentityFeed>(
      registry, resolver.get(),
      [maps, trusted = trusted_pairs.get()](const identity::RegistrySnapshot &snapshot) -> Result<void> {
        if (!maps)
          return {};
        if (auto synced = maps->sync_identities(snapshot.records()); !synced)
          return synced;
        return trusted->sync(snapshot);  // an identity's id may be what a declared pair waited for
      },
      feed_options,
      [](const std::string &message) { fmt::print(stderr, "riskgated: identity: {}\n", message); });
  identity_names = std::make_unique<RegistryNames>(registry);
  return {};
}

// The engine, the decision log and, with a datapath, the enforcer and the kernel's event stream.
Result<void> Agent::start_deciding(const policy::PolicySet &set)
{
  risk::EngineOptions engine_options;
  engine_options.names = identity_names.get();
  engine = std::make_unique<risk::Engine>(set, engine_options);
  apply_policy(set);
  // Pods and keys before the first request, as far as their servers answer (each within its timeout).
  (void)identity_feed->run_once();
  refresh_destinations();

  engine->watch(metrics);
  metrics::watch_process(metrics);
  decision_metrics = std::make_unique<audit::DecisionMetrics>(metrics);
  decision_metrics->policy_loaded(set.version, true);
  auto opened_log = audit::DecisionLog::open(
      {options.audit_path, static_cast<std::uint64_t>(options.audit_rotate_mb) << 20, options.audit_keep});
  if (!opened_log)
    return make_error(fmt::format("decision log: {}", opened_log.error()));
  log = std::move(*opened_log);
  decision_metrics->watch(*log);
  if (!datapath)
    return {};
  enforcer = std::make_unique<enforce::MapEnforcer>(datapath->maps());
  enforcer->watch(metrics);
  enforcer->start();
  auto reader =
      kernel::EventReader::open(options.pin_root, [this](const rg_event &event) { log->record(event); });
  if (!reader)
    return make_error(fmt::format("kernel events: {}", reader.error()));
  events = std::move(*reader);
  events->start();
  return {};
}

Result<void> Agent::start_admin_http()
{
  if (options.admin_metrics.empty() || options.admin_metrics == "off")
    return {};
  auto server = admin::HttpServer::start(options.admin_metrics, metrics, [this]() -> std::string {
    const int s = state.load();
    return s == kReady      ? ""
           : s == kStarting ? "starting: policy, programs and listeners not all up yet"
                            : "draining";
  });
  if (!server)
    return make_error(fmt::format("admin HTTP port {}: {}", options.admin_metrics, server.error()));
  http = std::move(*server);
  return {};
}

Result<void> Agent::start_admin_socket()
{
  if (options.admin_socket.empty() || options.admin_socket == "off")
    return {};
  admin::Socket::Options socket_options;
  socket_options.path = options.admin_socket;
  socket_options.status = [this] { return status(); };
  // riskgatectl unblock writes the maps (the block and its grace) itself, then tells the agent so
  // that a block write it is still retrying for that target is dropped.
  if (enforcer)
    socket_options.commands["manual_unblock"] = [this](const nlohmann::json &request) {
      enforcer->hold_off(request.value("target", ""));
      return nlohmann::json{{"ok", true}};
    };
  // riskgatectl block/unblock: the operator's action goes into the audit chain.
  socket_options.commands["operator"] = [this](const nlohmann::json &request) {
    auto action = audit::operator_action_from_json(request);
    if (!action)
      return nlohmann::json{{"error", action.error()}};
    return log->record(std::move(*action)) ? nlohmann::json{{"ok", true}}
                                           : nlohmann::json{{"error", "audit queue full: action not logged"}};
  };
  auto admin_socket = admin::Socket::start(std::move(socket_options));
  if (!admin_socket)
    return make_error(fmt::format("admin socket {}: {}", options.admin_socket, admin_socket.error()));
  socket = std::move(*admin_socket);
  log->set_listener([this](std::string_view line) { socket->publish(line); });
  return {};
}

Result<void> Agent::start_policy_watch()
{
  if (options.policy_dir.empty())
    return {};
  watcher =
      std::make_unique<risk::PolicyWatcher>(*engine, options.policy_dir, [this](const policy::LoadResult &r) {
        if (r.ok())
          apply_policy(*r.set);
        decision_metrics->policy_loaded(r.ok() ? r.set->version : engine->policy_version(), r.ok());
        fmt::print(stderr, "riskgated: policy reload {}: version {}\n", r.ok() ? "installed" : "rejected",
                   engine->policy_version());
      });
  if (auto watching = watcher->start(); !watching)
    return make_error(fmt::format("policy watch: {}", watching.error()));
  return {};
}

Result<void> Agent::start_proxy()
{
  if (proxy_config.listeners.empty()) {
    if (!datapath)
      return make_error(
          "nothing to run: give --listen HOST:PORT --upstream HOST:PORT, or a policy with Services");
    fmt::print(stderr, "riskgated: no listener: running the kernel datapath only\n");
    return {};
  }
  gate = std::make_unique<Gate>(
      GateParts{*resolver, *engine, enforcer.get(), log.get(), decision_metrics.get(), destinations.get()});
  auto created = proxy::Proxy::create(proxy_config, *gate);
  if (!created)
    return make_error(created.error());
  proxy = std::move(*created);
  if (auto running = proxy->start(); !running)
    return make_error(running.error());
  for (std::size_t i = 0; i < proxy_config.listeners.size(); ++i) {
    const auto &l = proxy_config.listeners[i];
    fmt::print(stderr, "riskgated: {} {} on port {} -> {}\n", l.transparent ? "transparent" : "gateway",
               l.service, proxy->listen_port(i), l.transparent ? "original destination" : l.upstream);
  }
  return {};
}

void Agent::start_background()
{
  identity_feed->start();  // remote sources (pods, JWKS, revocations) on the feed's own thread
  housekeeping = std::thread([this] {
    name_this_thread("rg-housekeep");
    std::unique_lock lock(housekeeping_mutex);
    while (!housekeeping_wake.wait_for(lock, std::chrono::seconds(1), [this] { return stopping; })) {
      lock.unlock();
      housekeeping_pass();
      lock.lock();
    }
  });
}

// In dependency order; the first failure stops the start (stop() undoes what was started).
Result<void> Agent::start()
{
  auto loaded = load_policy(options);
  if (!loaded.ok()) {
    std::string message = fmt::format("policy {} has errors:",
                                      options.policy_dir.empty() ? "(embedded default)" : options.policy_dir);
    for (const auto &d : loaded.diagnostics) message += "\n  " + policy::to_string(d);
    return make_error(message);
  }
  const policy::PolicySet &set = *loaded.set;
  // Before the policy is applied: which listeners call whom follows from it.
  auto config = build_proxy_config(options, set);
  if (!config)
    return make_error(config.error());
  proxy_config = std::move(*config);
  for (auto step : {&Agent::start_datapath_and_peers, &Agent::start_identity})
    if (auto ok = (this->*step)(); !ok)
      return ok;
  if (auto ok = start_deciding(set); !ok)
    return ok;
  for (auto step : {&Agent::start_admin_http, &Agent::start_admin_socket, &Agent::start_policy_watch})
    if (auto ok = (this->*step)(); !ok)
      return ok;
  if (auto ok = start_proxy(); !ok)
    return ok;
  fmt::print(
      stderr, "riskgated: policy {} ({}), decision log {}{}\n",
      options.policy_dir.empty() ? "embedded default" : options.policy_dir, set.version, options.audit_path,
      http ? fmt::format(", metrics on {} (port {})", options.admin_metrics, http->port()) : std::string());
  state = kReady;
  start_background();
  return {};
}

// Once a second: new cgroups into the kernel's identity tables (the feed's rescan, which never waits
// on the network: its fetches run on the feed's thread), the destination identities (a listener
// that moved or restarted), upstream health for the metrics (the engine
// reads each request's own view of its upstream from the proxy, RequestView::upstream).
void Agent::housekeeping_pass()
{
  (void)identity_feed->rescan_once();  // the identity file and cgroup tree; logs once per error
  refresh_destinations();
  if (!proxy)
    return;
  for (const auto &h : proxy->upstream_health()) decision_metrics->upstream_health(h.name, h.healthy);
}

nlohmann::json Agent::status() const
{
  // The admin socket answers while start() is still setting up what is reported below; until the
  // agent is ready (state is stored after all of it) it says only that.
  if (state.load() == kStarting)
    return {{"agent", "starting"}, {"pid", ::getpid()}};
  nlohmann::json s;
  s["agent"] = "up";
  s["pid"] = ::getpid();
  s["uptime_s"] = std::chrono::duration_cast<std::chrono::seconds>(steady_clock::now() - started).count();
  s["policy_version"] = engine->policy_version();
  s["policy_source"] = options.policy_dir.empty() ? "embedded default" : options.policy_dir;
  s["kernel"] = datapath ? "attached" : "off (--no-kernel)";
  s["pin_root"] = options.pin_root;
  s["audit_log"] = options.audit_path;
  auto &listeners = s["listeners"] = nlohmann::json::array();
  for (std::size_t i = 0; i < proxy_config.listeners.size(); ++i)
    listeners.push_back({{"service", proxy_config.listeners[i].service},
                         {"port", proxy ? proxy->listen_port(i) : 0},
                         {"transparent", proxy_config.listeners[i].transparent}});
  const auto es = engine->stats();
  s["decisions"] = {{"allow", es.decisions[0]},
                    {"challenge", es.decisions[1]},
                    {"limit", es.decisions[2]},
                    {"block", es.decisions[3]},
                    {"unenforced", es.unenforced}};
  s["tracked"] = {{"tokens", es.tracked_tokens}, {"subjects", es.tracked_subjects}};
  s["policy_reloads"] = {{"ok", es.reloads_ok}, {"failed", es.reloads_failed}};
  const auto ls = log->stats();
  s["log"] = {{"written", ls.written},
              {"dropped", ls.dropped},
              {"spilled", ls.spilled},
              {"write_errors", ls.write_errors}};
  if (gate)
    s["enforce_failures"] = gate->stats().enforce_failures;
  return s;
}

void Agent::stop()
{
  state = kDraining;
  {
    std::lock_guard lock(housekeeping_mutex);
    stopping = true;
  }
  housekeeping_wake.notify_all();
  if (housekeeping.joinable())
    housekeeping.join();
  if (identity_feed)
    identity_feed->stop();
  if (proxy)
    proxy->stop();  // drains in-flight requests; their decisions are logged before the flush below
  watcher.reset();
  if (events)
    events->stop();
  if (log) {
    log->flush();
    log->set_listener(nullptr);  // waits out a line being published to the admin socket
  }
  // The admin servers' threads call status(), which reads the gate, proxy and log: they stop
  // before any of those is destroyed.
  socket.reset();
  http.reset();
}

}  // namespace

int run(const Options &options)
{
  if (options.uninstall)
    return uninstall(options);
  // Stop and reload signals are taken by sigwait only: block them before any thread exists.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  Agent agent(options);
  if (auto started = agent.start(); !started) {
    fmt::print(stderr, "riskgated: {}\n", started.error());
    agent.stop();
    return 1;
  }
  for (;;) {
    int signal = 0;
    sigwait(&signals, &signal);
    if (signal != SIGHUP)
      break;
    if (agent.watcher)
      agent.watcher->reload();
    else
      fmt::print(stderr, "riskgated: SIGHUP: the embedded default policy has nothing to reload\n");
  }
  fmt::print(stderr,
             "riskgated: stopping: draining requests; kernel blocks stay pinned (riskgated --uninstall "
             "removes them)\n");
  agent.stop();
  return 0;
}

}  // namespace riskgate::agent
