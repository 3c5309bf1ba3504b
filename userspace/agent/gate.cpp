#include "gate.h"

#include "answer.h"

#include <array>

#include <fmt/format.h>

namespace riskgate::agent {

namespace {

// What on_complete needs of a decision, kept per worker thread between the request and its
// completion (same thread: a connection lives on one worker). A fixed table indexed by decision id:
// no allocation per request; an entry overwritten by a newer one is counted as unobserved.
struct Pending {
  std::uint64_t decision_id = 0;
  std::uint64_t subject = 0;
  Action action = Action::allow;
};
constexpr std::size_t kPendingSlots = 4096;

struct WorkerScratch {
  Decision decision;  // reused: evaluate() keeps its strings' capacity
  Decision observed;
  std::array<Pending, kPendingSlots> pending{};
};

WorkerScratch &scratch()
{
  thread_local WorkerScratch state;
  return state;
}

}  // namespace

void Gate::enforce(const RequestView &request, const Decision &decision)
{
  if (!parts_.enforcer)
    return;
  auto block = block_request(decision, request.peer, request.socket_cookie);
  if (!block) {
    enforce_failures_.fetch_add(1, std::memory_order_relaxed);
    fmt::print(stderr, "riskgated: {}\n", block.error());
    return;
  }
  if (auto written = parts_.enforcer->block(*block); !written) {
    enforce_failures_.fetch_add(1, std::memory_order_relaxed);
    fmt::print(stderr, "riskgated: decision {}: kernel block ({}) failed: {}\n", decision.id,
               describe(block->target), written.error());
  }
}

void Gate::on_request(const RequestView &request, HookVerdict &verdict)
{
  const RequestIdentity identity = parts_.resolver.resolve(request);
  risk::RiskInput input;
  input.identity = &identity;
  input.service = request.service;
  input.method = request.method;
  input.path = request.path;
  input.body_bytes = request.content_length;
  input.socket_cookie = request.socket_cookie;
  input.upstream = request.upstream;
  // Held to the end of the call: the destination's name points into it.
  const auto destinations = parts_.destinations ? parts_.destinations->table() : nullptr;
  if (destinations) {
    const identity::Destination to = destinations->of(request.service, request.destination);
    input.destination_identity = to.id;
    input.destination_name = to.name;
  }

  auto &state = scratch();
  Decision &decision = state.decision;
  parts_.engine.evaluate(input, decision);

  // A route-scoped deny answers this request only: blocking the pair in the kernel would also stop
  // the routes the rule allows.
  if (decision.action == Action::block && decision.enforced && decision.kernel_block)
    enforce(request, decision);
  if (parts_.metrics)
    parts_.metrics->observe(decision);

  auto &slot = state.pending[decision.id % kPendingSlots];
  slot.decision_id = decision.id;
  slot.subject = decision.subject;
  slot.action = decision.action;

  agent::to_verdict(decision, verdict);
  if (parts_.log)
    parts_.log->record(decision);  // copies: the log owns its entries until written
}

void Gate::on_complete(const RequestView &, const ExchangeResult &result)
{
  auto &state = scratch();
  const auto &slot = state.pending[result.decision_id % kPendingSlots];
  if (slot.decision_id != result.decision_id) {
    unobserved_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Decision &d = state.observed;
  d.id = slot.decision_id;
  d.subject = slot.subject;
  d.action = slot.action;
  parts_.engine.observe(d, result);
}

GateStats Gate::stats() const
{
  return {enforce_failures_.load(std::memory_order_relaxed), unobserved_.load(std::memory_order_relaxed)};
}

}  // namespace riskgate::agent
