// Generated HTTP/1.1 messages for the codec's property and differential tests: built from the pieces
// request smuggling and desync attacks are made of (framing headers spelled every way, conflicting
// framing, chunk sizes and extensions, bare CR / LF line ends, control bytes, obs-fold, Host counts,
// forged riskgate headers, pipelining; for responses also interim 1xx answers, bodiless statuses and
// bodies that end with the connection), mostly well formed with a defect or two. A seed replays the
// same sequence, so a failure names the message that caused it.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace riskgate::test {

class HttpGenerator {
 public:
  explicit HttpGenerator(std::uint64_t seed) : rng_(seed) {}
  std::string request();   // sometimes with a second request (or stray bytes) pipelined behind it
  std::string response();  // as an upstream sends it, before it closes the connection

 private:
  std::string request(bool pipelining);
  std::string framing(std::vector<std::string> &headers);  // adds framing headers, returns the body
  std::string message(std::string start_line, std::vector<std::string> headers, const std::string &body);
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

// Which sequence a generated test runs and how long: its own defaults, or RISKGATE_HTTP_SEED and
// RISKGATE_HTTP_CASES from the environment to run another or a longer one.
struct GeneratedRun {
  std::uint64_t seed;
  int cases;
};
GeneratedRun generated_run(std::uint64_t seed, int cases);

// `raw` with CR, LF, NUL and other non-printing bytes escaped, for a failure message.
std::string escaped(const std::string &raw);

}  // namespace riskgate::test
