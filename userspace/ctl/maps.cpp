// riskgatectl's access to the pinned maps and identity names.
#include <filesystem>

#include <fmt/format.h>

#include "ctl.h"

namespace riskgate::ctl {

kernel::PinnedMaps open_maps(const Context &ctx)
{
  if (!std::filesystem::is_directory(ctx.pin_root))
    fail(fmt::format("{} does not exist: riskgated has not run on this node (start it, or pass --pin-root)",
                     ctx.pin_root));
  auto maps = kernel::PinnedMaps::open(ctx.pin_root);
  if (!maps)
    fail(fmt::format("{}: run as root, and check that riskgated's pins are complete (restart riskgated)",
                     maps.error()));
  return std::move(*maps);
}

std::map<IdentityId, std::string> identity_names(const kernel::PinnedMaps &maps)
{
  auto names = maps.identity_names();
  return names ? std::move(*names) : std::map<IdentityId, std::string>{};
}

std::string identity_name(IdentityId id, const std::map<IdentityId, std::string> &names)
{
  if (id == RG_IDENTITY_WORLD)
    return "world";
  const auto it = names.find(id);
  return it == names.end() ? std::string() : it->second;
}

std::string identity_label(IdentityId id, const std::map<IdentityId, std::string> &names)
{
  const std::string name = identity_name(id, names);
  if (id == RG_IDENTITY_WORLD)
    return name;
  return name.empty() ? std::to_string(id) : fmt::format("{} ({})", name, id);
}

IdentityId resolve_identity(const std::string &text, const std::map<IdentityId, std::string> &names)
{
  for (const auto &[id, name] : names)
    if (name == text)
      return id;
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos && text.size() < 10)
    return static_cast<IdentityId>(std::stoul(text));
  std::string known;
  for (const auto &[id, name] : names) known += (known.empty() ? "" : ", ") + name;
  fail(fmt::format("unknown identity \"{}\": known identities are {} (see `riskgatectl identities`)", text,
                   known.empty() ? "none yet" : known));
}

}  // namespace riskgate::ctl
