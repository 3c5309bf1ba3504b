#include "support/upstream.h"
#include <riskgate/common/errors.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "support/kernel_env.h"

namespace riskgate::test {

namespace {

sockaddr_in loopback(std::uint16_t port, const std::string &ip = "127.0.0.1")
{
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

std::string make_temp_dir(const std::string &prefix)
{
  auto path = std::filesystem::temp_directory_path() / unique_name(prefix);
  std::filesystem::create_directories(path);
  return path.string();
}

void write_file(const std::string &path, const std::string &text)
{
  std::ofstream out(path);
  out << text;
  if (!out)
    throw std::runtime_error("write " + path);
}

}  // namespace

std::uint16_t free_port()
{
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto a = loopback(0);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) != 0)
    throw std::runtime_error(fmt::format("free_port: {}", errno_text()));
  ::close(fd);
  return ntohs(a.sin_port);
}

LoopbackListener::LoopbackListener(int backlog)
{
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto a = loopback(0);
  socklen_t len = sizeof a;
  if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
      ::listen(fd_, backlog) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len) != 0) {
    const std::string why = errno_text();
    if (fd_ >= 0)
      ::close(fd_);
    throw std::runtime_error("loopback listener: " + why);
  }
  port_ = ntohs(a.sin_port);
}

LoopbackListener::~LoopbackListener()
{
  ::close(fd_);
}

std::string LoopbackListener::address() const
{
  return fmt::format("127.0.0.1:{}", port_);
}

bool wait_for_port(std::uint16_t port, int timeout_ms, const std::string &ip)
{
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto a = loopback(port, ip);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

ChildProcess::ChildProcess(const std::string &program, const std::vector<std::string> &args,
                           const std::string &cgroup)
{
  const pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0)
    throw std::runtime_error(fmt::format("fork: {}", errno_text()));
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent)
      ::_exit(127);
    if (!cgroup.empty()) {
      std::ofstream procs(cgroup + "/cgroup.procs");
      if (!(procs << ::getpid() << std::flush))
        ::_exit(126);
    }
    const int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    std::vector<char *> argv;
    argv.push_back(const_cast<char *>(program.c_str()));
    for (const auto &a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(program.c_str(), argv.data());
    ::_exit(127);
  }
}

ChildProcess::~ChildProcess()
{
  kill_now();
}

ChildProcess::ChildProcess(ChildProcess &&other) noexcept : pid_(other.pid_)
{
  other.pid_ = -1;
}

ChildProcess &ChildProcess::operator=(ChildProcess &&other) noexcept
{
  if (this != &other) {
    kill_now();
    pid_ = other.pid_;
    other.pid_ = -1;
  }
  return *this;
}

void ChildProcess::kill_now()
{
  if (pid_ <= 0)
    return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

NginxUpstream::NginxUpstream(const std::string &ip, const std::string &cgroup)
    : dir_(make_temp_dir("rgt-nginx")), ip_(ip), port_(free_port())
{
  std::string status_locations;
  for (const int code : {200, 201, 202, 203, 204, 299, 404, 500, 503})
    status_locations += fmt::format("    location = /status/{0} {{ return {0}; }}\n", code);
  write_file(dir_ + "/nginx.conf", fmt::format(R"(
daemon off;
master_process off;
worker_processes 1;
pid {0}/nginx.pid;
error_log {0}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path {0}/body;
  proxy_temp_path {0}/proxy;
  fastcgi_temp_path {0}/fastcgi;
  uwsgi_temp_path {0}/uwsgi;
  scgi_temp_path {0}/scgi;
  server {{
    listen {3}:{1};
    location / {{ return 200 "hello world\n"; }}
{2}
    location = /nginx_status {{ stub_status; }}
  }}
}}
)",
                                               dir_, port_, status_locations, ip_));
  process_ =
      ChildProcess("nginx", {"-p", dir_, "-c", dir_ + "/nginx.conf", "-e", dir_ + "/error.log"}, cgroup);
  if (!wait_for_port(port_, 5000, ip_)) {
    std::ifstream log(dir_ + "/error.log");
    std::string why, line;
    while (std::getline(log, line)) why += line + "\n";
    process_.kill_now();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    throw std::runtime_error("nginx upstream did not start: " + why);
  }
}

NginxUpstream::~NginxUpstream()
{
  process_.kill_now();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string NginxUpstream::address() const
{
  return fmt::format("{}:{}", ip_, port_);
}

NodeEchoServer::NodeEchoServer() : dir_(make_temp_dir("rgt-node")), port_(free_port())
{
  write_file(dir_ + "/echo.js", R"(
const http = require('http');
const received = [];
const server = http.createServer({insecureHTTPParser: false}, (req, res) => {
  if (req.url === '/__received') {
    const list = JSON.stringify(received);
    res.writeHead(200, {'content-type': 'application/json', 'content-length': Buffer.byteLength(list)});
    res.end(list);
    return;
  }
  received.push(req.url);
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.stringify({method: req.method, url: req.url, httpVersion: req.httpVersion,
      headers: req.rawHeaders, body: Buffer.concat(chunks).toString('latin1')});
    res.writeHead(200, {'content-type': 'application/json', 'content-length': Buffer.byteLength(body)});
    res.end(body);
  });
});
server.keepAliveTimeout = 60000;
server.listen(Number(process.argv[2]), '127.0.0.1');
)");
  process_ = ChildProcess("node", {dir_ + "/echo.js", std::to_string(port_)});
  if (!wait_for_port(port_)) {
    process_.kill_now();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    throw std::runtime_error("node echo server did not start");
  }
}

NodeEchoServer::~NodeEchoServer()
{
  process_.kill_now();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string NodeEchoServer::address() const
{
  return fmt::format("127.0.0.1:{}", port_);
}

std::string raw_exchange(std::uint16_t port, const std::string &request, int timeout_ms, bool half_close)
{
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  auto a = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
    ::close(fd);
    throw std::runtime_error(fmt::format("connect 127.0.0.1:{}: {}", port, errno_text()));
  }
  std::size_t sent = 0;
  while (sent < request.size()) {
    const auto n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0)
      break;
    sent += static_cast<std::size_t>(n);
  }
  if (half_close)
    ::shutdown(fd, SHUT_WR);
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[65536];
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0)
      break;
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0)
      break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace riskgate::test
