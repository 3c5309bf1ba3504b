#include "support/http_cases.h"

namespace riskgate::test {

const std::vector<HttpCase> &http_request_cases()
{
  static const std::vector<HttpCase> table = {
      {"simple GET", "GET /a?b=1 HTTP/1.1\r\nHost: svc\r\nAccept: */*\r\n\r\n", 0,
       "GET /a?b=1 HTTP/1.1\r\nHost: svc\r\nAccept: */*\r\nx-riskgate-decision: 7\r\n\r\n"},
      {"Content-Length body", "POST /p HTTP/1.1\r\nHost: svc\r\nContent-Length: 5\r\n\r\nhello", 0,
       "POST /p HTTP/1.1\r\nHost: svc\r\nx-riskgate-decision: 7\r\nContent-Length: 5\r\n\r\nhello"},
      {"chunked body re-framed, extensions and trailers dropped",
       "POST /p HTTP/1.1\r\nHost: svc\r\nTransfer-Encoding: "
       "chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n",
       0,
       "POST /p HTTP/1.1\r\nHost: svc\r\nx-riskgate-decision: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
       "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"},
      {"hop-by-hop, Connection-named and forged riskgate headers removed",
       "GET / HTTP/1.1\r\nHost: svc\r\nConnection: keep-alive, X-Drop\r\nKeep-Alive: 5\r\nX-Drop: 1\r\n"
       "X-RiskGate-Identity: admin\r\nTE: trailers\r\nUpgrade: h2c\r\nX-Keep: 2\r\n\r\n",
       0, "GET / HTTP/1.1\r\nHost: svc\r\nX-Keep: 2\r\nx-riskgate-decision: 7\r\n\r\n"},
      {"pipelined requests", "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", 0,
       "GET /1 HTTP/1.1\r\nHost: a\r\nx-riskgate-decision: 7\r\n\r\n"
       "GET /2 HTTP/1.1\r\nHost: a\r\nx-riskgate-decision: 7\r\n\r\n"},
      {"HTTP/1.0 without Host gets the upstream's", "GET / HTTP/1.0\r\n\r\n", 0,
       "GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\nx-riskgate-decision: 7\r\n\r\n"},
      {"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0,
       "OPTIONS * HTTP/1.1\r\nHost: a\r\nx-riskgate-decision: 7\r\n\r\n"},
      {"the path made canonical, the query as sent",
       "GET /%7euser//x/./../y%3a%c3%a9?q=/%2e%2E/../%61 HTTP/1.1\r\nHost: a\r\n\r\n", 0,
       "GET /~user/y%3A%C3%A9?q=/%2e%2E/../%61 HTTP/1.1\r\nHost: a\r\nx-riskgate-decision: 7\r\n\r\n"},
      {"blank lines after the last request", "GET / HTTP/1.1\r\nHost: a\r\n\r\n\r\n\r\n", 0,
       "GET / HTTP/1.1\r\nHost: a\r\nx-riskgate-decision: 7\r\n\r\n"},

      {"Content-Length with Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
       ""},
      {"Transfer-Encoding then Content-Length",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400,
       ""},
      {"duplicate Content-Length, same value",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400, ""},
      {"duplicate Content-Length, different values",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", 400, ""},
      {"Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", 400, ""},
      {"non-numeric Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1a\r\n\r\nx", 400, ""},
      {"negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, ""},
      {"bad chunk size",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", 400, ""},
      {"chunk size overflow",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400, ""},
      {"chunk data longer than its size",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 400, ""},
      {"Transfer-Encoding not ending in chunked",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400, ""},
      {"Transfer-Encoding chunked then gzip",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, ""},
      {"Transfer-Encoding gzip, chunked (unsupported coding)",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, ""},
      {"duplicate Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
       "chunked\r\n\r\n0\r\n\r\n",
       400, ""},
      {"Transfer-Encoding on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
       ""},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400, ""},
      {"bare CR in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400, ""},
      {"bare LF line ending", "GET / HTTP/1.1\nHost: a\n\n", 400, ""},
      // llhttp 8 lets these three bare LFs through (Node's llhttp 9 does not); riskgate checks them itself.
      {"bare LF after the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400, ""},
      {"bare LF ending the head", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400, ""},
      {"bare LF ending a chunked body",
       "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\n", 400, ""},
      {"NUL in a value", std::string("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 37), 400, ""},
      {"control byte in a value",
       "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01"
       "c\r\n\r\n",
       400, ""},
      {"space before the colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", 400, ""},
      {"missing Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400, ""},
      {"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, ""},
      {"absolute-form target", "GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, ""},
      {"encoded slash in the path", "GET /a%2Fb HTTP/1.1\r\nHost: a\r\n\r\n", 400, ""},
      {"encoded backslash in the path", "GET /a%5cb HTTP/1.1\r\nHost: a\r\n\r\n", 400, ""},
      {"backslash in the path", "GET /a\\b HTTP/1.1\r\nHost: a\r\n\r\n", 400, ""},
      {"encoded NUL in the path", "GET /a%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400, ""},
      {"invalid percent-encoding in the path", "GET /a%g1 HTTP/1.1\r\nHost: a\r\n\r\n", 400, ""},
      {"dot segments above the root", "GET /a/../../b HTTP/1.1\r\nHost: a\r\n\r\n", 400, ""},
      {"fragment in the target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400, ""},
      {"CONNECT", "CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n", 405, ""},
      {"bad version", "GET / HTTP/1.7\r\nHost: a\r\n\r\n", 400, ""},
      {"junk method", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, ""},
      {"header block too large",
       "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n", 431, ""},
      {"body over the limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\n", 413, ""},
  };
  return table;
}

}  // namespace riskgate::test
