// The hash chain of the audit log: sealing a line, and verifying a set of files as one chain.
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include <fmt/format.h>

#include <riskgate/audit/decision_log.h>

namespace riskgate::audit {

namespace {

constexpr std::string_view kHashKey = ",\"hash\":\"";

// SHA-256 of `bytes` as 64 lowercase hex digits. Without SHA-256 (no default provider) the digits
// are all zero, which no line's bytes hash to: verify then names every line.
void sha256_hex(std::string_view bytes, ChainHash &hex)
{
  static constexpr char kHex[] = "0123456789abcdef";
  // Fetched once and a context per thread: EVP_sha256() inside EVP_Digest looks the algorithm up
  // (a lock and a hash table) on every call, and the writer seals every decision.
  static EVP_MD *const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  thread_local const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                                     &EVP_MD_CTX_free);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (sha256 == nullptr || context == nullptr || !EVP_DigestInit_ex2(context.get(), sha256, nullptr) ||
      !EVP_DigestUpdate(context.get(), bytes.data(), bytes.size()) ||
      !EVP_DigestFinal_ex(context.get(), digest, &length) || length * 2 != hex.size()) {
    hex.fill('0');
    return;
  }
  for (unsigned int i = 0; i < length; ++i) {
    hex[2 * i] = kHex[digest[i] >> 4];
    hex[2 * i + 1] = kHex[digest[i] & 0xf];
  }
}

std::string sha256_hex(std::string_view bytes)
{
  ChainHash hex;
  sha256_hex(bytes, hex);
  return std::string(hex.data(), hex.size());
}

struct ParsedLine {
  std::uint64_t seq = 0;
  std::string prev;
  std::string hash;
  bool hash_matches = false;
};

// Splits a line at its trailing hash; nullopt-like error when it is not a sealed line at all.
Result<ParsedLine> parse_line(const std::string &line)
{
  const auto at = line.rfind(kHashKey);
  if (at == std::string::npos || line.size() != at + kHashKey.size() + 64 + 2 || !line.ends_with("\"}"))
    return make_error("not a riskgate audit line (no trailing \"hash\")");
  ParsedLine parsed;
  parsed.hash = line.substr(at + kHashKey.size(), 64);
  parsed.hash_matches = sha256_hex(std::string_view(line).substr(0, at)) == parsed.hash;
  const auto object = nlohmann::json::parse(line, nullptr, false);
  if (object.is_discarded() || !object.is_object())
    return make_error("not valid JSON");
  const auto seq = object.find("seq");
  const auto prev = object.find("prev");
  if (seq == object.end() || !seq->is_number_unsigned() || prev == object.end() || !prev->is_string())
    return make_error("missing \"seq\" or \"prev\"");
  parsed.seq = seq->get<std::uint64_t>();
  parsed.prev = prev->get<std::string>();
  return parsed;
}

struct Line {
  std::string file;
  std::size_t number = 0;
  std::string text;
};

std::vector<Line> read_lines(const std::string &file, VerifyReport &report)
{
  std::vector<Line> lines;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    report.problems.push_back({file, 0, "cannot open: check the path and permissions"});
    return lines;
  }
  std::string text;
  std::size_t number = 0;
  while (std::getline(in, text)) {
    ++number;
    lines.push_back({file, number, std::move(text)});
  }
  return lines;
}

std::string where(const Line &line)
{
  return fmt::format("{}:{}", line.file, line.number);
}

}  // namespace

void seal_body(std::string &out, std::size_t body_start, std::uint64_t seq, std::string_view prev_hash,
               ChainHash &hash)
{
  const char last = out.size() > body_start ? out.back() : '{';
  out.append(last == '{' ? "\"prev\":\"" : ",\"prev\":\"");
  out.append(prev_hash);
  out.append("\",\"seq\":");
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, seq).ptr;
  out.append(digits, static_cast<std::size_t>(end - digits));
  sha256_hex(std::string_view(out).substr(body_start), hash);
  out.append(kHashKey);
  out.append(hash.data(), hash.size());
  out.append("\"}");
}

void seal_body(std::string &body, std::uint64_t seq, const std::string &prev_hash, std::string *hash_out)
{
  ChainHash hash;
  seal_body(body, 0, seq, prev_hash, hash);
  if (hash_out)
    hash_out->assign(hash.data(), hash.size());
}

std::string seal_line(nlohmann::json entry, std::uint64_t seq, const std::string &prev_hash,
                      std::string *hash_out)
{
  std::string line = entry.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line.pop_back();  // the closing brace: prev, seq and the hash go inside the object, last
  seal_body(line, seq, prev_hash, hash_out);
  return line;
}

VerifyReport verify_chain(const std::vector<std::string> &files)
{
  VerifyReport report;
  // Order the files by their first seq, so that any glob order works.
  std::vector<std::pair<std::uint64_t, std::vector<Line>>> ordered;
  for (const auto &file : files) {
    auto lines = read_lines(file, report);
    std::uint64_t first = 0;
    if (!lines.empty())
      if (auto parsed = parse_line(lines.front().text))
        first = parsed->seq;
    ordered.emplace_back(first, std::move(lines));
  }
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto &a, const auto &b) { return a.first < b.first; });
  std::vector<Line> all;
  for (auto &[first, lines] : ordered)
    for (auto &line : lines) all.push_back(std::move(line));

  // Where each seq sits, to tell a reordered line from a removed one.
  std::vector<Result<ParsedLine>> parsed;
  std::map<std::uint64_t, std::size_t> position;
  parsed.reserve(all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    parsed.push_back(parse_line(all[i].text));
    if (parsed.back())
      position.emplace(parsed.back()->seq, i);
  }

  const Line *previous = nullptr;
  const ParsedLine *previous_parsed = nullptr;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Line &line = all[i];
    auto problem = [&](const Line &at, std::string message) {
      report.problems.push_back({at.file, at.number, std::move(message)});
    };
    if (!parsed[i]) {
      problem(line, parsed[i].error());
      continue;
    }
    const ParsedLine &p = *parsed[i];
    ++report.lines;
    if (!p.hash_matches)
      problem(line, "edited: the line's content does not match its hash");
    if (!previous_parsed) {
      report.first_seq = p.seq;
      if (p.seq == 1 && p.prev != kGenesisHash)
        problem(line, "the first line of the log must chain to the genesis hash");
      report.starts_mid_chain = p.seq != 1;
    } else if (p.seq <= previous_parsed->seq) {
      problem(line, fmt::format("out of order: seq {} after seq {} (lines reordered)", p.seq,
                                previous_parsed->seq));
    } else if (p.seq != previous_parsed->seq + 1) {
      const auto missing = previous_parsed->seq + 1;
      const auto elsewhere = position.find(missing);
      if (elsewhere != position.end())
        problem(line, fmt::format("out of order: seq {} expected here is at {} (lines reordered)", missing,
                                  where(all[elsewhere->second])));
      else
        problem(line, fmt::format("{} line(s) removed before this line (seq {} follows seq {})",
                                  p.seq - missing, p.seq, previous_parsed->seq));
    } else if (p.prev != previous_parsed->hash) {
      problem(*previous, fmt::format("edited: {} records a different hash for it", where(line)));
    }
    previous = &line;
    previous_parsed = &p;
    report.last_seq = p.seq;
    report.last_hash = p.hash;
  }
  return report;
}

std::vector<std::string> log_files(const std::string &path)
{
  namespace fs = std::filesystem;
  const fs::path active(path);
  std::vector<std::pair<unsigned long, std::string>> rotated;
  std::error_code ec;
  const auto dir = active.has_parent_path() ? active.parent_path() : fs::path(".");
  const std::string prefix = active.filename().string() + ".";
  for (const auto &entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(prefix))
      continue;
    const std::string suffix = name.substr(prefix.size());
    if (suffix.empty() ||
        !std::all_of(suffix.begin(), suffix.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    rotated.emplace_back(std::stoul(suffix), entry.path().string());
  }
  std::sort(rotated.begin(), rotated.end(), [](const auto &a, const auto &b) { return a.first > b.first; });
  std::vector<std::string> files;
  for (auto &[n, file] : rotated) files.push_back(std::move(file));
  if (fs::exists(active, ec))
    files.push_back(path);
  return files;
}

}  // namespace riskgate::audit
