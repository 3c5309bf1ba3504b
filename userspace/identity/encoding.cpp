#include <riskgate/identity/encoding.h>
#include <riskgate/common/errors.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

namespace riskgate::identity {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<std::int8_t, 256> make_decode_table()
{
  std::array<std::int8_t, 256> table{};
  for (auto &v : table) v = -1;
  for (int i = 0; i < 64; ++i) table[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  return table;
}
constexpr auto kDecode = make_decode_table();

__extension__ typedef unsigned __int128 u128;

inline std::uint64_t mix(std::uint64_t a, std::uint64_t b)
{
  const u128 r = static_cast<u128>(a) * b;
  return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

inline std::uint64_t load64(const char *p)
{
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

std::optional<std::string> base64url_decode(std::string_view in)
{
  if (in.size() % 4 == 1)
    return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const std::int8_t v = kDecode[static_cast<unsigned char>(c)];
    if (v < 0)
      return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero: one encoding per byte string (no malleable tokens).
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
    return std::nullopt;
  return out;
}

std::string base64url_encode(std::string_view in)
{
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    acc = (acc << 8) | static_cast<unsigned char>(c);
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0)
    out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3f]);
  return out;
}

std::string hex(const std::uint8_t *data, std::size_t size)
{
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (std::size_t i = 0; i < size; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 0xf];
  }
  return out;
}

std::array<std::uint8_t, 32> sha256(std::string_view data)
{
  std::array<std::uint8_t, 32> digest{};
  SHA256(reinterpret_cast<const unsigned char *>(data.data()), data.size(), digest.data());
  return digest;
}

Fingerprint fingerprint(std::string_view token)
{
  const auto digest = sha256(token);
  Fingerprint fp{};
  std::memcpy(fp.data(), digest.data(), fp.size());
  return fp;
}

std::string to_hex(const Fingerprint &fp)
{
  return hex(fp.data(), fp.size());
}

std::uint64_t fast_hash(std::string_view data, std::uint64_t seed)
{
  constexpr std::uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull, k2 = 0x8ebc6af09c88c6e3ull,
                          k3 = 0x589965cc75374cc3ull;
  const char *p = data.data();
  std::size_t n = data.size();
  std::uint64_t h1 = seed ^ mix(n ^ k0, k1), h2 = seed ^ k2;
  // Two independent lanes over 32-byte blocks keep both multipliers busy.
  for (; n >= 32; n -= 32, p += 32) {
    h1 = mix(load64(p) ^ k1, load64(p + 8) ^ h1);
    h2 = mix(load64(p + 16) ^ k2, load64(p + 24) ^ h2);
  }
  for (; n >= 8; n -= 8, p += 8) h1 = mix(load64(p) ^ k3, h1 ^ k0);
  std::uint64_t tail = 0;
  std::memcpy(&tail, p, n);
  h1 = mix(tail ^ k1, h1 ^ (n << 56));
  return mix(h1 ^ k3, h2 ^ k0);
}

std::uint64_t process_hash_seed()
{
  static const std::uint64_t seed = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  return seed;
}

std::string openssl_error(const char *if_none)
{
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0)
    return if_none;
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  return buf;
}

std::optional<FileStamp> file_stamp(const std::string &path)
{
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return std::nullopt;
  return FileStamp{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                   static_cast<std::uint64_t>(st.st_size),
                   static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

Result<std::optional<std::string>> read_if_changed(const std::string &path, std::optional<FileStamp> &last)
{
  auto stamp = file_stamp(path);
  if (!stamp)
    return make_error(fmt::format("{}: {}", path, errno_text()));
  if (last && *last == *stamp)
    return std::optional<std::string>();
  last = stamp;
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  if (!file)
    return make_error(fmt::format("{}: cannot read", path));
  return std::optional<std::string>(text.str());
}

}  // namespace riskgate::identity
