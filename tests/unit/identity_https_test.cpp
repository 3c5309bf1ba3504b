// The control-plane HTTPS client against a TLS server started here on loopback, with a certificate
// made at test time: the Kubernetes pod list of this node, a JWKS URL, and the identity feed while
// that server hangs.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <latch>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <riskgate/identity/feed.h>
#include <riskgate/identity/jwks_url.h>
#include <riskgate/identity/jwt.h>
#include <riskgate/identity/jwt_sign.h>
#include <riskgate/identity/kubernetes.h>
#include "support/lab.h"
#include "support/workloads.h"

using namespace riskgate;
using namespace riskgate::identity;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir()
  {
    char tmpl[] = "/tmp/rgt-https-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string &name) const { return (path / name).string(); }
};

// A self-signed certificate for 127.0.0.1 (its own CA), written as PEM files.
struct TestCert {
  std::string cert_file, key_file;
  TestCert(const TempDir &dir, const std::string &prefix)
  {
    EVP_PKEY *key = EVP_EC_gen("P-256");
    REQUIRE(key);
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char *>("rgt-test"),
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"},
                              std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION *ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      REQUIRE(ext);
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    }
    REQUIRE(X509_sign(x, key, EVP_sha256()) > 0);
    cert_file = dir.file(prefix + "-cert.pem");
    key_file = dir.file(prefix + "-key.pem");
    FILE *f = std::fopen(cert_file.c_str(), "w");
    PEM_write_X509(f, x);
    std::fclose(f);
    f = std::fopen(key_file.c_str(), "w");
    PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
    std::fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
  }
};

// One-thread TLS server on 127.0.0.1: answers each request with handler(request head).
class FakeHttpsServer {
 public:
  using Handler = std::function<std::string(const std::string &head)>;
  FakeHttpsServer(const TestCert &cert, Handler handler) : handler_(std::move(handler))
  {
    std::signal(SIGPIPE, SIG_IGN);  // a client that timed out has closed its end
    ctx_ = SSL_CTX_new(TLS_server_method());
    REQUIRE(SSL_CTX_use_certificate_file(ctx_, cert.cert_file.c_str(), SSL_FILETYPE_PEM) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx_, cert.key_file.c_str(), SSL_FILETYPE_PEM) == 1);
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener_, 16) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr *>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeHttpsServer()
  {
    stop_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
    SSL_CTX_free(ctx_);
  }
  std::uint16_t port() const { return port_; }
  std::string last_head()
  {
    std::lock_guard lock(mu_);
    return last_head_;
  }
  int requests() const { return requests_; }

 private:
  void serve()
  {
    while (!stop_) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0)
        return;
      SSL *ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, fd);
      if (SSL_accept(ssl) == 1) {
        std::string head;
        char buf[4096];
        while (head.find("\r\n\r\n") == std::string::npos) {
          const int n = SSL_read(ssl, buf, sizeof buf);
          if (n <= 0)
            break;
          head.append(buf, static_cast<std::size_t>(n));
        }
        {
          std::lock_guard lock(mu_);
          last_head_ = head;
        }
        ++requests_;
        const std::string answer = handler_(head);
        if (!answer.empty())
          SSL_write(ssl, answer.data(), static_cast<int>(answer.size()));
        SSL_shutdown(ssl);
      }
      SSL_free(ssl);
      ::close(fd);
    }
  }

  Handler handler_;
  SSL_CTX *ctx_ = nullptr;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::mutex mu_;
  std::string last_head_;
  std::thread thread_;
};

std::string http_ok(const std::string &body, bool chunked = false)
{
  if (!chunked)
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  std::string out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (std::size_t i = 0; i < body.size(); i += 100) {
    const auto part = body.substr(i, 100);
    char size[16];
    std::snprintf(size, sizeof size, "%zx", part.size());
    out += std::string(size) + "\r\n" + part + "\r\n";
  }
  return out + "0\r\n\r\n";
}

const char *kPodList = R"({"kind":"PodList","apiVersion":"v1","items":[
 {"metadata":{"name":"orders-7d9","namespace":"shop","uid":"1a2b-3c4d"},
  "spec":{"serviceAccountName":"orders","nodeName":"node-a"},
  "status":{"phase":"Running","podIP":"10.244.1.7","podIPs":[{"ip":"10.244.1.7"},{"ip":"fd00::7"}]}},
 {"metadata":{"name":"job-1","namespace":"shop","uid":"dead-0001"},
  "spec":{"serviceAccountName":"orders"},"status":{"phase":"Succeeded","podIP":"10.244.1.9"}},
 {"metadata":{"name":"kube-proxy","namespace":"kube-system","uid":"beef-0002"},
  "spec":{"hostNetwork":true},"status":{"phase":"Running","podIP":"192.168.1.10"}}]})";

// The in-cluster settings for the fake API server: its CA, node-a, and a token file "sa-token-1".
KubernetesConfig api_config(const TempDir &dir, const TestCert &cert, std::uint16_t port)
{
  std::ofstream(dir.file("token")) << "sa-token-1\n";
  KubernetesConfig config;
  config.host = "127.0.0.1";
  config.port = port;
  config.token_file = dir.file("token");
  config.ca_file = cert.cert_file;
  config.node_name = "node-a";
  return config;
}

}  // namespace

TEST_CASE("the pods of this node come from the API server with the service-account token, over verified TLS")
{
  TempDir dir;
  TestCert cert(dir, "apiserver");
  FakeHttpsServer api(cert, [](const std::string &head) {
    if (head.find("Authorization: Bearer sa-token-1\r\n") == std::string::npos)
      return std::string("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
    return http_ok(kPodList, true);
  });
  const KubernetesConfig config = api_config(dir, cert, api.port());
  auto pods = list_node_pods(config);
  REQUIRE_MESSAGE(pods.ok(), pods.error());
  CHECK(api.last_head().rfind("GET /api/v1/pods?fieldSelector=spec.nodeName%3Dnode-a HTTP/1.1\r\n", 0) == 0);
  REQUIRE(pods->size() == 2);  // the finished job is left out
  CHECK((*pods)[0].name == "orders-7d9");
  CHECK((*pods)[0].namespace_name == "shop");
  CHECK((*pods)[0].service_account == "orders");
  CHECK((*pods)[0].uid == "1a2b-3c4d");
  CHECK((*pods)[0].ips == std::vector<std::string>{"10.244.1.7", "fd00::7"});
  CHECK((*pods)[1].service_account == "default");
  CHECK((*pods)[1].ips.empty());  // hostNetwork: the node's address is nobody's identity

  // Into the registry: the pod's cgroup (systemd driver naming) and its IPs belong to "orders".
  fs::create_directories(dir.path / "cg/kubepods.slice/kubepods-pod1a2b_3c4d.slice/cri-containerd-1.scope");
  WorkloadRegistry registry((dir.path / "cg").string());
  policy::Identity orders;
  orders.name = "orders";
  orders.selectors = {{"", "shop", "orders", ""}};
  REQUIRE(registry.set_policy_identities({orders}).ok());
  registry.set_kubernetes_pods(std::move(*pods));
  auto snap = registry.rescan();
  REQUIRE(snap.ok());
  CHECK((*snap)->find("orders")->cgroup_ids.size() == 2);
  CHECK((*snap)->find("orders")->cidrs.size() == 2);

  // A rotated token is read on the next call.
  std::ofstream(dir.file("token")) << "sa-token-2\n";
  auto denied = list_node_pods(config);
  REQUIRE_FALSE(denied.ok());
  CHECK(denied.error().find("HTTP 401") != std::string::npos);
  CHECK(api.last_head().find("Bearer sa-token-2") != std::string::npos);
}

TEST_CASE("TLS failures: unknown CA, wrong name, silent server, all bounded and explained")
{
  TempDir dir;
  TestCert cert(dir, "server"), other(dir, "other");
  FakeHttpsServer server(cert, [](const std::string &) { return http_ok("{}"); });
  HttpsRequest request;
  request.url = {"127.0.0.1", server.port(), "/"};
  request.ca_file = other.cert_file;
  auto r = https_get(request);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("TLS handshake") != std::string::npos);

  request.ca_file = cert.cert_file;
  request.url.host = "localhost";  // the certificate names 127.0.0.1 only
  r = https_get(request);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().find("TLS handshake") != std::string::npos);

  request.url.host = "127.0.0.1";
  REQUIRE(https_get(request).ok());

  FakeHttpsServer silent(cert, [](const std::string &) {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    return std::string();
  });
  request.url.port = silent.port();
  request.timeout = std::chrono::milliseconds(200);
  const auto start = std::chrono::steady_clock::now();
  r = https_get(request);
  CHECK_FALSE(r.ok());
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(600));

  CHECK_FALSE(parse_https_url("http://issuer.example/jwks").ok());
  auto url = parse_https_url("https://[::1]:8443/keys?x=1");
  REQUIRE(url.ok());
  CHECK(url->host == "::1");
  CHECK(url->port == 8443);
  CHECK(url->path == "/keys?x=1");
  CHECK_FALSE(parse_https_url("https://issuer.example:99999/").ok());
}

TEST_CASE("a JWKS URL is fetched when due, cached, and its keys stay in force while the issuer is down")
{
  TempDir dir;
  TestCert cert(dir, "issuer");
  auto key = generate_signing_key(Alg::RS256, "url-key").value();
  const std::string jwks = *jwks_document({&key});
  auto server = std::make_unique<FakeHttpsServer>(cert, [&](const std::string &) { return http_ok(jwks); });
  auto store = std::make_shared<KeyStore>();
  JwksUrlOptions options;
  options.ca_file = cert.cert_file;
  options.cache_file = dir.file("jwks-cache.json");
  options.timeout = std::chrono::milliseconds(500);
  const std::string url = "https://127.0.0.1:" + std::to_string(server->port()) + "/.well-known/jwks.json";
  JwksUrl source(url, store, options);
  const auto t0 = std::chrono::steady_clock::now();
  auto polled = source.poll(t0);
  REQUIRE_MESSAGE(polled.ok(), polled.error());
  CHECK(*polled);
  CHECK(server->last_head().rfind("GET /.well-known/jwks.json HTTP/1.1", 0) == 0);

  JwtConfig config;
  JwtVerifier verifier(config, store);
  const std::string token = *sign_jwt(key, R"({"sub":"svc:a","exp":4000000000})");
  CHECK(verifier.verify(token).status == CredentialStatus::valid);

  CHECK(*source.poll(t0 + std::chrono::seconds(10)) == false);  // not due
  CHECK(server->requests() == 1);
  CHECK(*source.poll(t0 + std::chrono::seconds(301)) == false);  // due, unchanged
  CHECK(server->requests() == 2);

  server.reset();  // the issuer goes away
  auto down = source.poll(t0 + std::chrono::seconds(700));
  REQUIRE_FALSE(down.ok());
  CHECK(down.error().find("previous keys stay in force") != std::string::npos);
  CHECK(verifier.verify(token).status == CredentialStatus::valid);

  // A restart without network starts from the cache file.
  auto fresh = std::make_shared<KeyStore>();
  JwksUrl restarted(url, fresh, options);
  REQUIRE(*restarted.load_cache());
  CHECK(JwtVerifier(config, fresh).verify(token).status == CredentialStatus::valid);
}

TEST_CASE("pod lists: malformed input is an error, odd entries are skipped")
{
  CHECK_FALSE(parse_pod_list("nope").ok());
  CHECK_FALSE(parse_pod_list("{\"kind\":\"PodList\"}").ok());
  auto empty = parse_pod_list(R"({"items":null})");
  REQUIRE(empty.ok());
  CHECK(empty->empty());
  auto odd = parse_pod_list(
      R"({"items":[1, {"metadata":{"name":"x"}}, {"metadata":{"uid":"u","namespace":"n"},"spec":{"hostNetwork":"yes"},"status":{"podIP":"10.0.0.1"}}]})");
  REQUIRE(odd.ok());
  REQUIRE(odd->size() == 1);
  CHECK(odd->front().ips == std::vector<std::string>{"10.0.0.1"});
}

TEST_CASE("an API server that never answers does not hold up a new cgroup's identity")
{
  TempDir dir;
  TestCert cert(dir, "apiserver");
  std::latch answer(1);
  std::atomic<bool> asked{false};
  FakeHttpsServer api(cert, [&](const std::string &) {
    asked = true;
    answer.wait();  // the TLS session is up, the request read, and no answer comes until the end
    return std::string();
  });
  const fs::path root = dir.path / "cgroup";
  auto registry = test::frontend_registry(root);
  IdentityFeedOptions options;
  options.kubernetes = api_config(dir, cert, api.port());
  options.kubernetes->timeout = std::chrono::seconds(20);  // far beyond the wait below
  std::mutex mu;
  std::size_t frontend_cgroups = 0;
  IdentityFeed feed(registry, nullptr,
                    [&](const RegistrySnapshot &snapshot) -> Result<void> {
                      std::lock_guard lock(mu);
                      frontend_cgroups = snapshot.find("frontend")->cgroup_ids.size();
                      return {};
                    },
                    options, {});
  // Destroyed before the feed, whose thread is waiting for this answer when the feed stops.
  struct AnswerAtEnd {
    std::latch &answer;
    ~AnswerAtEnd() { answer.count_down(); }
  } answer_at_end{answer};

  feed.start();
  REQUIRE(test::eventually([&] { return asked.load(); }, 10000));  // the fetch now waits on the server
  fs::create_directories(root / "system.slice/frontend.service-2");
  auto rescanned = std::async(std::launch::async, [&] { return feed.rescan_once(); });
  REQUIRE(rescanned.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  const auto sent = rescanned.get();
  REQUIRE(sent.ok());
  CHECK(*sent);
  std::lock_guard lock(mu);
  CHECK(frontend_cgroups == 2);
}
