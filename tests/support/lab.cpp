#include "support/lab.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include <riskgate/common/net.h>
#include <riskgate/common/errors.h>
#include "support/capture.h"
#include "support/kernel_env.h"

namespace riskgate::test {

std::string run_command(const std::string &command)
{
  const std::string full = command + " 2>&1";
  FILE *pipe = ::popen(full.c_str(), "r");
  if (!pipe)
    throw std::runtime_error(fmt::format("popen {}: {}", command, errno_text()));
  std::string output;
  char buf[256];
  while (std::fgets(buf, sizeof(buf), pipe)) output += buf;
  const int status = ::pclose(pipe);
  if (status != 0)
    throw std::runtime_error(fmt::format("'{}' failed ({}): {}", command, status, output));
  return output;
}

ScopedNetns::ScopedNetns() : name_(unique_name("rgtn"))
{
  run_command("ip netns add " + name_);
}

ScopedNetns::~ScopedNetns()
{
  try {
    run_command("ip netns delete " + name_);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "lab: %s\n", e.what());
  }
}

namespace {

void enter_netns(const std::string &name)
{
  const std::string path = "/var/run/netns/" + name;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0)
    throw std::runtime_error(fmt::format("enter netns {}: {}", name, errno_text()));
  ::close(fd);
}

unsigned next_subnet()
{
  static std::atomic<unsigned> counter{0};
  return (static_cast<unsigned>(::getpid()) * 7 + counter++) % 250 + 1;
}

}  // namespace

void run_in_netns(const ScopedNetns &netns, const std::function<void()> &fn)
{
  std::exception_ptr error;
  std::thread thread([&] {
    try {
      enter_netns(netns.name());
      fn();
    } catch (...) {
      error = std::current_exception();
    }
  });
  thread.join();
  if (error)
    std::rethrow_exception(error);
}

VethPair::VethPair(const ScopedNetns &netns) : host_(unique_name("rgtv")), peer_(unique_name("rgtp"))
{
  const unsigned subnet = next_subnet();
  host_ip_ = fmt::format("10.213.{}.1", subnet);
  peer_ip_ = fmt::format("10.213.{}.2", subnet);
  run_command(fmt::format("ip link add {} type veth peer name {} netns {}", host_, peer_, netns.name()));
  run_command(fmt::format("ip addr add {}/24 dev {} && ip link set {} up", host_ip_, host_, host_));
  run_command(
      fmt::format("ip -n {} addr add {}/24 dev {} && ip -n {} link set {} up && ip -n {} link set lo up",
                  netns.name(), peer_ip_, peer_, netns.name(), peer_, netns.name()));
}

VethPair::~VethPair()
{
  try {
    run_command("ip link delete " + host_);  // removes the peer too
  } catch (const std::exception &e) {
    std::fprintf(stderr, "lab: %s\n", e.what());
  }
}

sockaddr_storage endpoint(const std::string &ip, unsigned short port)
{
  sockaddr_storage out{};
  auto &v4 = reinterpret_cast<sockaddr_in &>(out);
  auto &v6 = reinterpret_cast<sockaddr_in6 &>(out);
  if (::inet_pton(AF_INET, ip.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(port);
  } else if (::inet_pton(AF_INET6, ip.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(port);
  } else {
    throw std::runtime_error("not an address: " + ip);
  }
  return out;
}

// ---- Worker: a child process serving line commands on a socketpair ----

namespace {

socklen_t sockaddr_len(const sockaddr_storage &addr)
{
  return addr.ss_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

bool wait_readable(int fd, int timeout_ms)
{
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

void echo_loop(int listener)
{
  for (;;) {
    const int conn = ::accept(listener, nullptr, nullptr);
    if (conn < 0)
      return;
    std::thread([conn] {
      char buf[4096];
      for (;;) {
        const ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
        if (n <= 0 || ::send(conn, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n)
          break;
      }
      ::close(conn);
    }).detach();
  }
}

int timed_connect(int fd, const sockaddr_storage &to)
{
  const int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int err = 0;
  if (::connect(fd, reinterpret_cast<const sockaddr *>(&to), sockaddr_len(to)) != 0) {
    err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 500) != 1) {
        err = ETIMEDOUT;
      } else {
        socklen_t len = sizeof(err);
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
    }
  }
  ::fcntl(fd, F_SETFL, flags);
  return err;
}

// Datagrams a worker's UDP receivers got, by text; the receivers run on their own threads.
struct Datagrams {
  std::mutex mutex;
  std::map<std::string, int> by_text;
};

// What a worker keeps between commands.
struct WorkerState {
  int conn = -1;             // the current TCP connection
  int udp4 = -1, udp6 = -1;  // unconnected UDP senders, made on first use
  Datagrams received;
};

void receive_loop(int fd, Datagrams &received)
{
  char buf[2048];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0)
      return;
    std::lock_guard lock(received.mutex);
    ++received.by_text[std::string(buf, static_cast<size_t>(n))];
  }
}

// The UDP commands: "udp_listen IP PORT", "sendto IP PORT TEXT", "received PREFIX".
std::optional<std::string> serve_udp(const std::string &op, std::istringstream &in, WorkerState &state)
{
  std::string ip, text;
  unsigned port = 0;
  if (op == "udp_listen") {
    in >> ip >> port;
    const auto addr = endpoint(ip, static_cast<unsigned short>(port));
    const int fd = ::socket(addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (::bind(fd, reinterpret_cast<const sockaddr *>(&addr), sockaddr_len(addr)) != 0)
      return fmt::format("err {}", errno);
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    ::getsockname(fd, reinterpret_cast<sockaddr *>(&bound), &len);
    std::thread(receive_loop, fd, std::ref(state.received)).detach();
    return fmt::format("ok {}", ntohs(reinterpret_cast<sockaddr_in &>(bound).sin_port));
  }
  if (op == "sendto") {
    in >> ip >> port >> text;
    const auto addr = endpoint(ip, static_cast<unsigned short>(port));
    int &fd = addr.ss_family == AF_INET ? state.udp4 : state.udp6;
    if (fd < 0)
      fd = ::socket(addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const ssize_t sent = ::sendto(fd, text.data(), text.size(), 0, reinterpret_cast<const sockaddr *>(&addr),
                                  sockaddr_len(addr));
    return fmt::format("ok {}", sent < 0 ? errno : 0);
  }
  if (op == "received") {
    in >> text;
    int count = 0;
    std::lock_guard lock(state.received.mutex);
    for (const auto &[got, n] : state.received.by_text) count += got.rfind(text, 0) == 0 ? n : 0;
    return fmt::format("ok {}", count);
  }
  return std::nullopt;
}

std::string serve(const std::string &request, WorkerState &state)
{
  std::istringstream in(request);
  std::string op, ip, arg;
  in >> op;
  int &conn = state.conn;
  if (auto udp = serve_udp(op, in, state))
    return *udp;
  if (op == "listen") {
    unsigned port = 0;
    in >> ip >> port;
    const auto addr = endpoint(ip, static_cast<unsigned short>(port));
    const int fd = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, reinterpret_cast<const sockaddr *>(&addr), sockaddr_len(addr)) != 0 ||
        ::listen(fd, 64) != 0)
      return fmt::format("err {}", errno);
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    ::getsockname(fd, reinterpret_cast<sockaddr *>(&bound), &len);
    std::thread(echo_loop, fd).detach();
    return fmt::format("ok {}", ntohs(reinterpret_cast<sockaddr_in &>(bound).sin_port));
  }
  if (op == "connect") {
    unsigned port = 0;
    in >> ip >> port;
    if (conn >= 0)
      ::close(conn);
    const auto addr = endpoint(ip, static_cast<unsigned short>(port));
    conn = ::socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int err = timed_connect(conn, addr);
    if (err != 0) {
      ::close(conn);
      conn = -1;
    }
    return fmt::format("ok {}", err);
  }
  if (op == "send") {
    in >> arg;
    if (conn < 0)
      return fmt::format("ok {}", ENOTCONN);
    if (::send(conn, arg.data(), arg.size(), MSG_NOSIGNAL) < 0)
      return fmt::format("ok {}", errno);
    std::string got;
    while (got.size() < arg.size()) {
      if (!wait_readable(conn, 500))
        return fmt::format("ok {}", ETIMEDOUT);
      char buf[4096];
      const ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
      if (n <= 0)
        return fmt::format("ok {}", n == 0 ? ECONNRESET : errno);
      got.append(buf, static_cast<size_t>(n));
    }
    return fmt::format("ok {}", got == arg ? 0 : EBADMSG);
  }
  if (op == "local") {
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    if (conn < 0 || ::getsockname(conn, reinterpret_cast<sockaddr *>(&local), &len) != 0)
      return "err local";
    return "ok " + net::endpoint_string(local);
  }
  if (op == "close") {
    if (conn >= 0)
      ::close(conn);
    conn = -1;
    return "ok 0";
  }
  return "err unknown command";
}

[[noreturn]] void worker_main(int control, const Worker::Options &options)
{
  try {
    if (!options.cgroup.empty()) {
      std::ofstream procs(options.cgroup + "/cgroup.procs");
      procs << ::getpid();
      procs.flush();
      if (!procs)
        throw std::runtime_error("join cgroup " + options.cgroup);
    }
    if (!options.netns.empty())
      enter_netns(options.netns);
  } catch (const std::exception &e) {
    const std::string msg = fmt::format("err {}\n", e.what());
    (void)::write(control, msg.data(), msg.size());
    ::_exit(1);
  }
  (void)::write(control, "ready\n", 6);
  WorkerState state;
  std::string pending;
  char buf[512];
  for (;;) {
    const ssize_t n = ::read(control, buf, sizeof(buf));
    if (n <= 0)
      ::_exit(0);
    pending.append(buf, static_cast<size_t>(n));
    for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
      const std::string reply = serve(pending.substr(0, nl), state) + "\n";
      pending.erase(0, nl + 1);
      (void)::write(control, reply.data(), reply.size());
    }
  }
}

std::string read_line(int fd, int timeout_ms)
{
  std::string line;
  char c;
  while (line.empty() || line.back() != '\n') {
    if (!wait_readable(fd, timeout_ms) || ::read(fd, &c, 1) != 1)
      throw std::runtime_error("worker did not answer (reply so far: '" + line + "')");
    line += c;
  }
  line.pop_back();
  return line;
}

}  // namespace

Worker::Worker(Options options)
{
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw std::runtime_error(fmt::format("socketpair: {}", errno_text()));
  pid_ = ::fork();
  if (pid_ < 0)
    throw std::runtime_error(fmt::format("fork: {}", errno_text()));
  if (pid_ == 0) {
    ::close(sv[0]);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // a crashed test leaves no worker behind
    worker_main(sv[1], options);
  }
  ::close(sv[1]);
  control_ = sv[0];
  const std::string hello = read_line(control_, 5000);
  if (hello != "ready")
    throw std::runtime_error("worker failed to start: " + hello);
}

Worker::~Worker()
{
  if (control_ >= 0)
    ::close(control_);
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string Worker::call(const std::string &request)
{
  const std::string line = request + "\n";
  if (::write(control_, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    throw std::runtime_error("worker control write failed");
  const std::string reply = read_line(control_, 5000);
  if (reply.rfind("ok", 0) != 0)
    throw std::runtime_error("worker: " + request + ": " + reply);
  return reply.size() > 3 ? reply.substr(3) : "";
}

unsigned short Worker::listen_echo(const std::string &ip, unsigned short port)
{
  return static_cast<unsigned short>(std::stoul(call(fmt::format("listen {} {}", ip, port))));
}

int Worker::connect(const std::string &ip, unsigned short port)
{
  return std::stoi(call(fmt::format("connect {} {}", ip, port)));
}

int Worker::send_echo(const std::string &message)
{
  return std::stoi(call("send " + message));
}

sockaddr_storage Worker::local_endpoint()
{
  auto local = net::parse_endpoint(call("local"));
  if (!local)
    throw std::runtime_error("worker local endpoint: " + local.error());
  return *local;
}

void Worker::close_connection()
{
  call("close");
}

unsigned short Worker::listen_udp(const std::string &ip, unsigned short port)
{
  return static_cast<unsigned short>(std::stoul(call(fmt::format("udp_listen {} {}", ip, port))));
}

int Worker::send_datagram(const std::string &ip, unsigned short port, const std::string &text)
{
  return std::stoi(call(fmt::format("sendto {} {} {}", ip, port, text)));
}

int Worker::datagrams_received(const std::string &prefix)
{
  return std::stoi(call("received " + prefix));
}

// ---- Process ----

Process::Process(const std::vector<std::string> &argv, const std::string &cgroup, const std::string &log)
{
  pid_ = ::fork();
  if (pid_ < 0)
    throw std::runtime_error(fmt::format("fork: {}", errno_text()));
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!cgroup.empty()) {
      std::ofstream procs(cgroup + "/cgroup.procs");
      procs << ::getpid();
    }
    if (!log.empty()) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
    }
    std::vector<char *> args;
    for (const auto &a : argv) args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
}

Process::~Process()
{
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void Process::kill(int signal)
{
  if (pid_ > 0)
    ::kill(pid_, signal);
}

std::optional<int> Process::wait(int timeout_ms)
{
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  do {
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } while (std::chrono::steady_clock::now() < deadline);
  return std::nullopt;
}

bool eventually(const std::function<bool()> &done, int timeout_ms)
{
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::uint16_t announced_port(const std::string &log, const std::string &announcement, int timeout_ms)
{
  const std::regex pattern(announcement);
  std::uint16_t port = 0;
  eventually(
      [&] {
        std::smatch m;
        const std::string text = read_text(log);
        if (std::regex_search(text, m, pattern))
          port = static_cast<std::uint16_t>(std::stoi(m[1]));
        return port != 0;
      },
      timeout_ms);
  return port;
}

}  // namespace riskgate::test
