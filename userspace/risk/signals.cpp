// The signals that learn: what each reads and updates in the subject and token records (under
// their shard locks), and how each scores what it found (outside them).
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include <riskgate/common/duration.h>
#include <riskgate/policy/params.h>

#include "stages.h"

namespace riskgate::risk {

ActiveBlock active_block(const SubjectState &s, BlockScope scope, const Request &r)
{
  if (s.block_until_ns > r.now && s.block_key != 0 && s.block_key == block_key(scope, r))
    return {true, (s.block_until_ns - r.now + 999'999) / 1'000'000};
  return {};
}

RateFinding learn_rate(const RateParams &params, RateStat &rate, std::uint64_t first_ns, std::uint64_t now)
{
  rate.add(now, params.alpha);
  if (now - first_ns < params.warmup_ns)
    return {};
  const double z = rate.z();
  return {rate.count >= params.min_rate && z >= params.sigma, rate.count, rate.mean, z};
}

NoveltyFinding learn_novelty(const NoveltyParams &params, SubjectState &s, std::uint64_t endpoint,
                             std::uint64_t decision, std::uint64_t now)
{
  NoveltyFinding f;
  if (s.endpoints.insert(endpoint) == EndpointSet::Seen::known)
    return f;
  s.novel_decisions.remember(decision);
  if (now - s.first_ns >= params.learn_ns) {
    f.novel = true;
    s.novel.add(now, params.scan_window_ns);
    f.novel_in_window = s.novel.estimate(now, params.scan_window_ns);
    f.novel_failures_in_window = s.novel_failures.estimate(now, params.scan_window_ns);
  } else {
    // Nothing is novel before the baseline exists, but a newcomer sweeping many endpoints is
    // still a scan; scored only together with the failure signal.
    s.discovered.add(now, params.scan_window_ns);
    f.discovered_in_window = s.discovered.estimate(now, params.scan_window_ns);
  }
  return f;
}

FailureFinding read_failures(const FailureParams &params, SubjectState &s, std::uint64_t now)
{
  FailureFinding f;
  f.requests = s.requests.estimate(now, params.window_ns);
  const double failed = s.failures.estimate(now, params.window_ns);
  f.ratio = f.requests > 0 ? failed / f.requests : 0;
  f.fired = f.requests >= params.min_requests && f.ratio >= params.ratio;
  return f;
}

PayloadFinding read_payload(const PayloadParams &params, const SubjectState &s,
                            std::optional<std::uint64_t> body_bytes)
{
  if (!body_bytes || s.payload_samples < params.warmup)
    return {};
  const double x = std::log1p(static_cast<double>(*body_bytes));
  const double sd = std::max(std::sqrt(static_cast<double>(s.payload_var)), 0.5);
  return {(x - s.payload_mean) / sd >= params.sigma, s.payload_mean};
}

TokenState::Origin &token_origin(TokenState &t, std::uint32_t identity, std::uint32_t address,
                                 std::uint64_t window_ns, std::uint64_t now)
{
  TokenState::Origin *slot = nullptr;
  TokenState::Origin *oldest = &t.origins[0];
  for (auto &origin : t.origins) {
    if (origin.last_ns != 0 && now - origin.last_ns > window_ns)
      origin = {};
    if (origin.last_ns != 0 && origin.identity == identity && origin.address == address)
      slot = &origin;
    if (origin.last_ns < oldest->last_ns)
      oldest = &origin;
  }
  if (!slot) {
    slot = oldest;
    *slot = {identity, address, 0, now, {}};
  }
  slot->last_ns = now;
  return *slot;
}

RoamingFinding count_origins(const TokenState &t)
{
  RoamingFinding f;
  std::uint32_t addresses[TokenState::kOrigins];
  for (const auto &origin : t.origins) {
    if (origin.last_ns == 0)
      continue;
    if (std::find(f.ids, f.ids + f.identities, origin.identity) == f.ids + f.identities)
      f.ids[f.identities++] = origin.identity;
    if (std::find(addresses, addresses + f.addresses, origin.address) == addresses + f.addresses)
      addresses[f.addresses++] = origin.address;
  }
  return f;
}

// Flattened: the per-signal functions stand apart to be read and tested alone; on the hot path they
// are inlined back into one body (called, they cost the median of bench/risk_bench.cpp 150-300 ns).
[[gnu::flatten]] Findings learn(const CompiledPolicy &p, const Request &r, const Decision &d,
                                StateTables &state)
{
  const RiskInput &input = r.input;
  const std::uint64_t now = r.now;
  const std::uint64_t endpoint =
      hash_string(d.route, hash_string(input.method, hash_string(input.service, 0xe9)));
  Findings f;
  state.subjects.with(r.subject, now, [&](SubjectState &s, bool created) {
    if (created)
      s.first_ns = now;
    f.block = active_block(s, p.block_scope, r);
    if (p.rate.s.active())
      f.rate = learn_rate(p.rate, s.rate, s.first_ns, now);
    // A blocked subject's requests are the engine's own answers: they teach it no endpoints.
    if (p.novelty.s.active() && !f.block.active)
      f.novelty = learn_novelty(p.novelty, s, endpoint, d.id, now);
    if (p.failures.s.active())
      f.failures = read_failures(p.failures, s, now);
    if (p.payload.s.active())
      f.payload = read_payload(p.payload, s, input.body_bytes);
  });
  if (!r.token || !(p.roaming.s.active() || p.rate.s.active()))
    return f;
  state.tokens.with(r.token, now, [&](TokenState &t, bool) {
    TokenState::Origin &origin =
        token_origin(t, r.who.workload, static_cast<std::uint32_t>(r.address_hash), p.roaming.window_ns, now);
    // The (identity, token) rate is kept per origin: a stolen token used elsewhere neither feeds
    // nor hides behind its owner's baseline.
    if (p.rate.s.active())
      f.token_rate = learn_rate(p.rate, origin.rate, origin.first_ns, now);
    if (p.roaming.s.active())
      f.roaming = count_origins(t);
  });
  return f;
}

void learn_exchange(const CompiledPolicy &p, const ExchangeResult &result, SubjectState &s, std::uint64_t now)
{
  s.requests.add(now, p.failures.window_ns);
  if (result.status == 401 || result.status == 403 || result.status == 404) {
    s.failures.add(now, p.failures.window_ns);
    // Counted apart from the failure ratio, which the subject's successes on known endpoints dilute.
    if (s.novel_decisions.contains(result.decision_id))
      s.novel_failures.add(now, p.novelty.scan_window_ns);
  }
  if (!p.payload.s.active())
    return;
  const auto x = static_cast<float>(std::log1p(static_cast<double>(result.request_body_bytes)));
  if (s.payload_samples == 0) {
    s.payload_mean = x;
  } else {
    constexpr float kAlpha = 0.05f;
    const float delta = x - s.payload_mean;
    s.payload_mean += kAlpha * delta;
    s.payload_var = (1 - kAlpha) * (s.payload_var + kAlpha * delta * delta);
  }
  ++s.payload_samples;
}

void score_roaming(const RoamingParams &params, const RoamingFinding &f, const IdentityNames *names,
                   Decision &d)
{
  if (!params.s.active())
    return;
  if (f.identities > 1) {
    std::string origins;
    for (unsigned i = 0; i < f.identities; ++i) {
      const std::string origin = names ? names->name_of(f.ids[i]) : std::string();
      origins +=
          fmt::format("{}{}", i == 0 ? "" : ", ", origin.empty() ? fmt::format("id {}", f.ids[i]) : origin);
    }
    add_contribution(
        d, "roaming", params.s.weight,
        fmt::format("token seen from {} workload identities ({}) within {}; now from {}", f.identities,
                    origins, format_duration_ms(params.window_ns / 1'000'000), d.source_identity_name));
  } else if (f.addresses > params.max_addresses) {
    add_contribution(d, "roaming", params.s.weight / 2,
                     fmt::format("token seen from {} source addresses within {}", f.addresses,
                                 format_duration_ms(params.window_ns / 1'000'000)));
  }
}

void score_rate(const RateParams &params, const RateFinding &subject, const RateFinding &token, Decision &d)
{
  if (subject.fired)
    add_contribution(d, "rate", params.s.weight,
                     fmt::format("{} requests this second from {}, usual {:.1f}/s (z={:.1f})", subject.count,
                                 d.source_identity_name, subject.mean, subject.z));
  else if (token.fired)
    add_contribution(d, "rate", params.s.weight,
                     fmt::format("{} requests this second with this token from {}, usual {:.1f}/s",
                                 token.count, d.source_identity_name, token.mean));
}

// Half a burst is free because a deploy adds a few routes at once and their first calls may fail
// (the client rolled out before the server); a scanner's probes are many and mostly fail.
double scan_share(const NoveltyParams &params, const NoveltyFinding &f)
{
  const double evidence = f.novel_in_window + f.novel_failures_in_window;
  return std::clamp(2 * evidence / params.scan_burst - 1, 0.0, 1.0);
}

void score_novelty(const NoveltyParams &params, const NoveltyFinding &f, const FailureFinding &failures,
                   const Request &r, Decision &d)
{
  const std::string_view name = d.source_identity_name;
  if (f.novel) {
    int points = params.s.weight;
    std::string evidence =
        fmt::format("{} never called {} {} {} before", name, r.input.service, r.input.method, d.route);
    const double share = scan_share(params, f);
    if (share > 0) {
      points += static_cast<int>(std::lround(params.scan_weight * share));
      evidence += fmt::format("; {:.0f} new endpoints within {}, {:.0f} of them failing (scanning)",
                              f.novel_in_window, format_duration_ms(params.scan_window_ns / 1'000'000),
                              f.novel_failures_in_window);
    }
    add_contribution(d, "novelty", points, std::move(evidence));
  } else if (failures.fired && f.discovered_in_window >= params.scan_burst) {
    add_contribution(
        d, "novelty", params.scan_weight,
        fmt::format(
            "{} swept {:.0f} endpoints within {} while still learning, most of them failing (scanning)", name,
            f.discovered_in_window, format_duration_ms(params.scan_window_ns / 1'000'000)));
  }
}

void score_failures(const FailureParams &params, const FailureFinding &f, Decision &d)
{
  if (f.fired)
    add_contribution(d, "failures", params.s.weight,
                     fmt::format("{:.0f}% of {}'s last {:.0f} requests ended 401/403/404", f.ratio * 100,
                                 d.source_identity_name, f.requests));
}

void score_payload(const PayloadParams &params, const PayloadFinding &f, const Request &r, Decision &d)
{
  if (f.fired)
    add_contribution(
        d, "payload", params.s.weight,
        fmt::format("body {} B, usual about {:.0f} B", *r.input.body_bytes, std::expm1(f.usual)));
}

void score_health(const HealthParams &params, const Request &r, Decision &d)
{
  if (!r.input.upstream || !params.s.active())
    return;
  const UpstreamHealth &h = *r.input.upstream;
  if (!h.healthy || h.error_ratio >= params.error_ratio || h.latency_ewma_ms >= params.latency_ms)
    add_contribution(
        d, "health", params.s.weight,
        fmt::format("upstream {} degraded: {:.0f}% errors, {:.0f} ms latency{}", h.name, h.error_ratio * 100,
                    h.latency_ewma_ms, h.healthy ? "" : ", marked unhealthy"));
}

}  // namespace riskgate::risk
