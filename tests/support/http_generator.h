// Generated HTTP/1.1 requests for the codec's property and differential tests: built from the pieces
// request smuggling and desync attacks are made of (framing headers spelled every way, conflicting
// framing, chunk sizes and extensions, bare CR / LF line ends, control bytes, obs-fold, Host counts,
// forged riskgate headers, pipelining), mostly well formed with a defect or two. A seed replays the
// same sequence, so a failure names the request that caused it.
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace riskgate::test {

class HttpRequestGenerator {
 public:
  explicit HttpRequestGenerator(std::uint64_t seed) : rng_(seed) {}
  std::string next();

 private:
  std::string request(bool allow_pipelining);
  std::string chunked_body();
  std::string line_end();
  bool chance(unsigned percent);
  std::size_t below(std::size_t n);
  // The usual spelling (the first) most of the time, any of them otherwise.
  template <std::size_t N>
  const char *pick(const char *const (&choices)[N])
  {
    return chance(70) ? choices[0] : choices[below(N)];
  }

  std::mt19937_64 rng_;
};

// `raw` with CR, LF, NUL and other non-printing bytes escaped, for a failure message.
std::string escaped(const std::string &raw);

}  // namespace riskgate::test
