#include <riskgate/identity/revocation.h>

#include <cctype>
#include <sstream>

#include <fmt/format.h>

namespace riskgate::identity {

Result<void> RevocationList::load(std::string_view text, const std::string &origin)
{
  auto entries = std::make_shared<Entries>();
  std::istringstream in{std::string(text)};
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (auto hash = line.find('#'); hash != std::string::npos)
      line.erase(hash);
    std::istringstream fields(line);
    std::string kind, value, extra;
    if (!(fields >> kind))
      continue;
    if (!(fields >> value) || (fields >> extra))
      return make_error(
          fmt::format("{}:{}: expected \"jti <value>\" or \"sha256 <fingerprint>\"", origin, number));
    if (kind == "jti") {
      entries->jtis.insert(value);
    } else if (kind == "sha256") {
      for (auto &c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (value.size() != 32 || value.find_first_not_of("0123456789abcdef") != std::string::npos)
        return make_error(fmt::format("{}:{}: a fingerprint is 32 hex digits", origin, number));
      entries->fingerprints.insert(value);
    } else {
      return make_error(
          fmt::format("{}:{}: unknown entry kind \"{}\" (jti or sha256)", origin, number, kind));
    }
  }
  entries_.store(std::move(entries), std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  return {};
}

Result<bool> RevocationList::poll()
{
  if (path_.empty())
    return false;
  std::lock_guard lock(writer_);
  auto text = read_if_changed(path_, stamp_);
  if (!text)
    return make_error("revocation list " + text.error());
  if (!*text)
    return false;
  auto loaded = load(**text, path_);
  if (!loaded)
    return make_error(loaded.error() + " (previous list stays in force)");
  return true;
}

bool RevocationList::revoked(std::string_view jti, const Fingerprint &fp) const
{
  const auto entries = entries_.load(std::memory_order_acquire);
  if (entries->jtis.empty() && entries->fingerprints.empty())
    return false;
  return (!jti.empty() && entries->jtis.count(std::string(jti))) || entries->fingerprints.count(to_hex(fp));
}

}  // namespace riskgate::identity
