// The listening TCP sockets of this network namespace with the cgroup of whoever opened each
// (netlink sock_diag: INET_DIAG_CGROUP_ID, Linux 5.8), and the namespace's interface addresses.
// Control path only: the agent calls it on reloads and in its housekeeping.
#include <riskgate/identity/destinations.h>

#include <ifaddrs.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>

#include <riskgate/common/errors.h>

namespace riskgate::identity {
namespace {

struct Fd {
  int fd;
  ~Fd()
  {
    if (fd >= 0)
      ::close(fd);
  }
};

// The netlink macros cast C-style; these are the same arithmetic.
template <typename T>
const T *payload(const nlmsghdr *header)
{
  return reinterpret_cast<const T *>(reinterpret_cast<const char *>(header) + NLMSG_HDRLEN);
}
const nlmsghdr *next_message(const nlmsghdr *header, unsigned &length)
{
  length -= NLMSG_ALIGN(header->nlmsg_len);
  return reinterpret_cast<const nlmsghdr *>(reinterpret_cast<const char *>(header) +
                                            NLMSG_ALIGN(header->nlmsg_len));
}
const rtattr *next_attribute(const rtattr *attr, int &length)
{
  length -= static_cast<int>(RTA_ALIGN(attr->rta_len));
  return reinterpret_cast<const rtattr *>(reinterpret_cast<const char *>(attr) + RTA_ALIGN(attr->rta_len));
}

net::MappedAddr diag_address(const inet_diag_msg &msg)
{
  sockaddr_storage address{};
  if (msg.idiag_family == AF_INET) {
    auto &v4 = reinterpret_cast<sockaddr_in &>(address);
    v4.sin_family = AF_INET;
    std::memcpy(&v4.sin_addr, msg.id.idiag_src, 4);
  } else {
    auto &v6 = reinterpret_cast<sockaddr_in6 &>(address);
    v6.sin6_family = AF_INET6;
    std::memcpy(&v6.sin6_addr, msg.id.idiag_src, 16);
  }
  return *net::to_mapped(address);
}

// One dump message's listener; false when the kernel sent no cgroup id.
bool read_listener(const nlmsghdr *header, LocalListener &out)
{
  const auto *msg = payload<inet_diag_msg>(header);
  out.address = diag_address(*msg);
  out.port = ntohs(msg->id.idiag_sport);
  int length = static_cast<int>(header->nlmsg_len - NLMSG_LENGTH(sizeof *msg));
  for (const auto *attr = reinterpret_cast<const rtattr *>(msg + 1); RTA_OK(attr, length);
       attr = next_attribute(attr, length))
    if (attr->rta_type == INET_DIAG_CGROUP_ID && attr->rta_len >= RTA_LENGTH(sizeof out.cgroup_id)) {
      std::memcpy(&out.cgroup_id, reinterpret_cast<const char *>(attr) + RTA_LENGTH(0), sizeof out.cgroup_id);
      return true;
    }
  return false;
}

Result<void> dump_listeners(int family, std::vector<LocalListener> &out)
{
  Fd sock{::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)};
  if (sock.fd < 0)
    return make_error("sock_diag socket: " + errno_text());
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } ask{};
  ask.header.nlmsg_len = sizeof ask;
  ask.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  ask.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  ask.request.sdiag_family = static_cast<std::uint8_t>(family);
  ask.request.sdiag_protocol = IPPROTO_TCP;
  ask.request.idiag_states = 1u << TCP_LISTEN;
  if (::send(sock.fd, &ask, sizeof ask, 0) < 0)
    return make_error("sock_diag request: " + errno_text());
  alignas(nlmsghdr) std::array<char, 32768> buffer;
  for (;;) {
    const ssize_t got = ::recv(sock.fd, buffer.data(), buffer.size(), 0);
    if (got < 0)
      return make_error("sock_diag dump: " + errno_text());
    auto length = static_cast<unsigned>(got);
    for (auto *header = reinterpret_cast<const nlmsghdr *>(buffer.data()); NLMSG_OK(header, length);
         header = next_message(header, length)) {
      if (header->nlmsg_type == NLMSG_DONE)
        return {};
      if (header->nlmsg_type == NLMSG_ERROR)
        return make_error("sock_diag dump: " + errno_text(-payload<nlmsgerr>(header)->error));
      LocalListener listener;
      if (read_listener(header, listener))
        out.push_back(listener);
    }
  }
}

Result<std::vector<net::MappedAddr>> interface_addresses()
{
  ifaddrs *list = nullptr;
  if (::getifaddrs(&list) != 0)
    return make_error("getifaddrs: " + errno_text());
  std::vector<net::MappedAddr> out;
  for (const ifaddrs *i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
      continue;
    sockaddr_storage address{};
    std::memcpy(&address, i->ifa_addr,
                i->ifa_addr->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6));
    out.push_back(*net::to_mapped(address));
  }
  ::freeifaddrs(list);
  return out;
}

}  // namespace

Result<LocalSockets> scan_local_sockets()
{
  LocalSockets out;
  for (const int family : {AF_INET, AF_INET6})
    if (auto dumped = dump_listeners(family, out.listeners); !dumped)
      return make_error(dumped.error());
  auto addresses = interface_addresses();
  if (!addresses)
    return make_error(addresses.error());
  out.addresses = std::move(*addresses);
  return out;
}

}  // namespace riskgate::identity
