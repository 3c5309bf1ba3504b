// The JSON form of decisions and kernel events: one schema for the log, the admin stream and the CLI.
#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include <fmt/format.h>

#include <riskgate/audit/decision_log.h>

#include <riskgate/common/net.h>
#include <riskgate/common/reasons.h>

namespace riskgate::audit {

namespace {

constexpr Action kActions[] = {Action::allow, Action::challenge, Action::limit, Action::block};
constexpr BlockScope kScopes[] = {BlockScope::ip, BlockScope::identity, BlockScope::pair,
                                  BlockScope::connection};

const char *event_type_name(std::uint32_t type)
{
  switch (type) {
    case RG_EV_XDP_DROP: return "xdp_drop";
    case RG_EV_CONNECT_DENY: return "connect_deny";
    case RG_EV_SENDMSG_DENY: return "sendmsg_deny";
    case RG_EV_MSG_DROP: return "msg_drop";
    case RG_EV_SOCK_TAGGED: return "sock_tagged";
    default: return "unknown";
  }
}

// v4-mapped addresses print as dotted quads: that is what operators grep for.
std::string address_text(const rg_u8 (&addr)[RG_IPV6_LEN])
{
  net::MappedAddr mapped;
  std::memcpy(mapped.data(), addr, mapped.size());
  return net::address_string(mapped);
}

template <class T>
Result<T> field(const nlohmann::json &object, const char *key)
{
  const auto it = object.find(key);
  if (it == object.end())
    return make_error(fmt::format("missing field \"{}\"", key));
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception &) {
    return make_error(fmt::format("field \"{}\" has the wrong type", key));
  }
}

}  // namespace

Result<Action> parse_action(const std::string &name)
{
  for (Action action : kActions)
    if (name == to_string(action))
      return action;
  return make_error(fmt::format("unknown action \"{}\" (allow, challenge, limit, block)", name));
}

Result<BlockScope> parse_scope(const std::string &name)
{
  for (BlockScope scope : kScopes)
    if (name == to_string(scope))
      return scope;
  return make_error(fmt::format("unknown block scope \"{}\" (ip, identity, pair, connection)", name));
}

nlohmann::json to_json(const Decision &d)
{
  nlohmann::json contributions = nlohmann::json::array();
  for (const auto &c : d.contributions)
    contributions.push_back({{"signal", c.signal}, {"points", c.points}, {"evidence", c.evidence}});
  nlohmann::json out = {
      {"id", d.id},
      {"time_unix_ns", d.time_unix_ns},
      {"service", d.service},
      {"source_identity", d.source_identity},
      {"source_identity_name", d.source_identity_name},
      {"destination_identity", d.destination_identity},
      {"destination_identity_name", d.destination_identity_name},
      {"source_address", d.source_address},
      {"method", d.method},
      {"route", d.route},
      {"token_fingerprint", d.token_fingerprint},
      {"score", d.score},
      {"contributions", std::move(contributions)},
      {"rule", d.rule},
      {"action", to_string(d.action)},
      {"enforced", d.enforced},
      {"policy_version", d.policy_version},
      {"evaluation_ns", d.evaluation_ns},
  };
  if (d.action == Action::block) {
    out["block_scope"] = to_string(d.block_scope);
    out["block_ttl_ms"] = d.block_ttl_ms;
  }
  if (d.action == Action::limit)
    out["retry_after_s"] = d.retry_after_s;
  return out;
}

Result<Decision> decision_from_json(const nlohmann::json &o)
{
  if (!o.is_object())
    return make_error("a decision is a JSON object");
  Decision d;
#define RG_FIELD(name, type)            \
  do {                                  \
    auto value = field<type>(o, #name); \
    if (!value)                         \
      return make_error(value.error()); \
    d.name = std::move(*value);         \
  } while (0)
  RG_FIELD(id, std::uint64_t);
  RG_FIELD(time_unix_ns, std::uint64_t);
  RG_FIELD(service, std::string);
  RG_FIELD(source_identity, IdentityId);
  RG_FIELD(source_identity_name, std::string);
  RG_FIELD(destination_identity, IdentityId);
  RG_FIELD(destination_identity_name, std::string);
  RG_FIELD(source_address, std::string);
  RG_FIELD(method, std::string);
  RG_FIELD(route, std::string);
  RG_FIELD(token_fingerprint, std::string);
  RG_FIELD(score, int);
  RG_FIELD(rule, std::string);
  RG_FIELD(enforced, bool);
  RG_FIELD(policy_version, std::string);
  RG_FIELD(evaluation_ns, std::uint64_t);
#undef RG_FIELD
  auto action = field<std::string>(o, "action");
  if (!action)
    return make_error(action.error());
  auto parsed = parse_action(*action);
  if (!parsed)
    return make_error(parsed.error());
  d.action = *parsed;
  if (d.action == Action::block) {
    auto scope = field<std::string>(o, "block_scope");
    auto ttl = field<std::uint64_t>(o, "block_ttl_ms");
    if (!scope || !ttl)
      return make_error(!scope ? scope.error() : ttl.error());
    auto parsed_scope = parse_scope(*scope);
    if (!parsed_scope)
      return make_error(parsed_scope.error());
    d.block_scope = *parsed_scope;
    d.block_ttl_ms = *ttl;
  }
  if (d.action == Action::limit) {
    auto retry = field<std::uint32_t>(o, "retry_after_s");
    if (!retry)
      return make_error(retry.error());
    d.retry_after_s = *retry;
  }
  auto contributions = o.find("contributions");
  if (contributions == o.end() || !contributions->is_array())
    return make_error("field \"contributions\" must be an array");
  for (const auto &c : *contributions) {
    auto signal = field<std::string>(c, "signal");
    auto points = field<int>(c, "points");
    auto evidence = field<std::string>(c, "evidence");
    if (!signal || !points || !evidence)
      return make_error("each contribution needs signal, points and evidence");
    d.contributions.push_back({std::move(*signal), *points, std::move(*evidence)});
  }
  return d;
}

nlohmann::json to_json(const rg_event &e)
{
  return {
      {"type", event_type_name(e.type)},
      {"ts_ns", e.ts_ns},
      {"reason", e.reason},
      {"reason_name", reason_name(e.reason)},
      {"decision_id", e.decision_id},
      {"cookie", e.cookie},
      {"src_identity", e.src_identity},
      {"dst_identity", e.dst_identity},
      {"saddr", address_text(e.saddr)},
      {"sport", e.sport},
      {"daddr", address_text(e.daddr)},
      {"dport", e.dport},
      {"ifindex", e.ifindex},
  };
}

nlohmann::json to_json(const OperatorAction &a)
{
  return {{"action", a.action}, {"target", a.target}, {"ttl_ms", a.ttl_ms},
          {"reason", a.reason}, {"user", a.user},     {"time_unix_ns", a.time_unix_ns}};
}

Result<OperatorAction> operator_action_from_json(const nlohmann::json &o)
{
  if (!o.is_object())
    return make_error("an operator action is a JSON object");
  OperatorAction a;
  auto action = field<std::string>(o, "action");
  auto target = field<std::string>(o, "target");
  if (!action || !target)
    return make_error(!action ? action.error() : target.error());
  if (*action != "block" && *action != "unblock")
    return make_error(fmt::format("unknown operator action \"{}\" (block, unblock)", *action));
  a.action = std::move(*action);
  a.target = std::move(*target);
  a.ttl_ms = o.value("ttl_ms", std::uint64_t{0});
  a.reason = o.value("reason", "");
  a.user = o.value("user", "");
  a.time_unix_ns = o.value("time_unix_ns", std::uint64_t{0});
  return a;
}

}  // namespace riskgate::audit

namespace riskgate::audit {

namespace {

// Writes a decision's JSON into memory sized beforehand: once per request on the log writer, so no
// per-character capacity checks (std::string's appends are out-of-line calls here).
class BodyWriter {
 public:
  explicit BodyWriter(char *at) : at_(at) {}
  char *end() const { return at_; }

  void raw(std::string_view text)
  {
    std::memcpy(at_, text.data(), text.size());
    at_ += text.size();
  }
  void put(char c) { *at_++ = c; }

  // `"key":`, after a comma unless it opens an object.
  void key(std::string_view name)
  {
    if (at_[-1] != '{')
      put(',');
    put('"');
    raw(name);
    raw("\":");
  }

  template <class Integer>
  void number(Integer value)
  {
    at_ = std::to_chars(at_, at_ + 24, value).ptr;
  }

  // A JSON string literal: quotes, backslashes and control bytes escaped; a byte sequence that is
  // not well-formed UTF-8 becomes U+FFFD, as nlohmann's error_handler_t::replace does. At most
  // kStringExpansion bytes per input byte, plus the quotes.
  void string(std::string_view text)
  {
    static constexpr char kHex[] = "0123456789abcdef";
    put('"');
    const auto *p = reinterpret_cast<const unsigned char *>(text.data());
    const auto *end = p + text.size();
    while (p < end) {
      const unsigned char c = *p;
      if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
        put(static_cast<char>(c));
        ++p;
        continue;
      }
      if (c < 0x80) {
        if (c == '"' || c == '\\') {
          put('\\');
          put(static_cast<char>(c));
        } else {
          raw("\\u00");
          put(kHex[c >> 4]);
          put(kHex[c & 0xf]);
        }
        ++p;
        continue;
      }
      // Lead byte: length and the smallest code point it may encode (no overlongs, no surrogates).
      const int length = c >= 0xc2 && c <= 0xdf   ? 2
                         : c >= 0xe0 && c <= 0xef ? 3
                         : c >= 0xf0 && c <= 0xf4 ? 4
                                                  : 0;
      bool valid = length > 0 && end - p >= length;
      for (int i = 1; valid && i < length; ++i) valid = (p[i] & 0xc0) == 0x80;
      if (valid && length == 3)
        valid = !(c == 0xe0 && p[1] < 0xa0) && !(c == 0xed && p[1] >= 0xa0);
      if (valid && length == 4)
        valid = !(c == 0xf0 && p[1] < 0x90) && !(c == 0xf4 && p[1] >= 0x90);
      if (valid) {
        raw(std::string_view(reinterpret_cast<const char *>(p), static_cast<std::size_t>(length)));
        p += length;
      } else {
        raw("\xef\xbf\xbd");
        ++p;
      }
    }
    put('"');
  }

  void field(std::string_view name, std::string_view value)
  {
    key(name);
    string(value);
  }
  void field(std::string_view name, std::uint64_t value)
  {
    key(name);
    number(value);
  }

  static constexpr std::size_t kStringExpansion = 6;  // a control byte: \u00XX

 private:
  char *at_;
};

}  // namespace

void append_decision_body(std::string &out, const Decision &d)
{
  // Room for the worst case: every key, number and literal (under 1 KiB) and every string byte
  // escaped at its longest.
  std::size_t text = d.service.size() + d.source_identity_name.size() + d.destination_identity_name.size() +
                     d.source_address.size() + d.method.size() + d.route.size() + d.token_fingerprint.size() +
                     d.rule.size() + d.policy_version.size();
  for (const auto &c : d.contributions) text += c.signal.size() + c.evidence.size() + 64;
  const std::size_t start = out.size();
  out.resize(start + 1024 + text * BodyWriter::kStringExpansion);
  BodyWriter w(out.data() + start);
  w.put('{');
  w.field("action", to_string(d.action));
  if (d.action == Action::block) {
    w.field("block_scope", to_string(d.block_scope));
    w.field("block_ttl_ms", d.block_ttl_ms);
  }
  w.key("contributions");
  w.put('[');
  for (std::size_t i = 0; i < d.contributions.size(); ++i) {
    const auto &c = d.contributions[i];
    w.raw(i ? ",{" : "{");
    w.field("evidence", c.evidence);
    w.key("points");
    w.number(c.points);
    w.field("signal", c.signal);
    w.put('}');
  }
  w.put(']');
  w.field("destination_identity", d.destination_identity);
  w.field("destination_identity_name", d.destination_identity_name);
  w.key("enforced");
  w.raw(d.enforced ? "true" : "false");
  w.field("evaluation_ns", d.evaluation_ns);
  w.field("id", d.id);
  w.field("kind", "decision");
  w.field("method", d.method);
  w.field("policy_version", d.policy_version);
  if (d.action == Action::limit)
    w.field("retry_after_s", d.retry_after_s);
  w.field("route", d.route);
  w.field("rule", d.rule);
  w.key("score");
  w.number(d.score);
  w.field("service", d.service);
  w.field("source_address", d.source_address);
  w.field("source_identity", d.source_identity);
  w.field("source_identity_name", d.source_identity_name);
  w.field("time_unix_ns", d.time_unix_ns);
  w.field("token_fingerprint", d.token_fingerprint);
  out.resize(static_cast<std::size_t>(w.end() - out.data()));
}

}  // namespace riskgate::audit
