// One thread serving every connection of a listening socket through epoll over non-blocking
// sockets, so that no client, however slow, holds up another: each connection has one deadline for
// its whole request and one for writing its reply, and at most max_connections are open at once
// (accepting one more closes the oldest: a probe always gets in, and a flood only evicts itself).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <riskgate/common/result.h>

namespace riskgate::admin {

struct LoopLimits {
  std::size_t max_connections = 256;
  std::size_t max_request = 16384;                   // bytes of a request read at most
  std::chrono::milliseconds request_deadline{2000};  // from accept to the whole request
  std::chrono::milliseconds reply_deadline{10000};   // from the answer to its last byte sent
};

// How much of a request the handler sees: more may come, the peer stopped sending, or
// max_request bytes came without the request being whole.
enum class Input { partial, ended, full };

// A connection's fate once its request is known: `reply` is written and the connection closed; or, with `hand_over`, the connection leaves the loop unwritten and
// the loop's Adopt owns its fd from then on (a stream).
struct Answer {
  std::string reply;
  bool hand_over = false;
};

class ConnectionLoop {
 public:
  // Called on the loop's thread after every read; nullopt (only for Input::partial): read on.
  using Handler = std::function<std::optional<Answer>(std::string_view received, Input input)>;
  using Adopt = std::function<void(int fd)>;

  // Takes listen_fd (closed also when this fails) and starts the thread named `thread_name`.
  static Result<std::unique_ptr<ConnectionLoop>> start(int listen_fd, std::string thread_name,
                                                       LoopLimits limits, Handler handler, Adopt adopt = {});
  ~ConnectionLoop();
  ConnectionLoop(const ConnectionLoop &) = delete;
  ConnectionLoop &operator=(const ConnectionLoop &) = delete;

 private:
  using Clock = std::chrono::steady_clock;
  struct Connection {
    int fd;
    Clock::time_point deadline;
    std::string received;
    std::string reply;  // once answered: what is written, from `sent` on
    std::size_t sent = 0;
    bool answered = false;
  };
  using Connections = std::map<std::uint64_t, Connection>;  // by epoll key: accept order, oldest first

  ConnectionLoop(int listen_fd, int stop_fd, int epoll_fd, std::string thread_name, LoopLimits limits,
                 Handler handler, Adopt adopt);
  void run();
  int close_overdue();  // the milliseconds until the next deadline, -1 when there is none
  void accept_waiting();
  void pause_accepting(bool paused);
  void read_request(Connections::iterator it);
  void answer(Connections::iterator it, Answer answer);
  void write_reply(Connections::iterator it);
  void drop(Connections::iterator it);  // a connection given up on (overdue, or the oldest at the cap)
  void close(Connections::iterator it);

  int listen_fd_, stop_fd_, epoll_fd_;
  LoopLimits limits_;
  Handler handler_;
  Adopt adopt_;
  std::string thread_name_;
  Connections connections_;
  std::uint64_t next_key_;
  std::optional<Clock::time_point> accepting_again_at_;  // set while accepting is paused
  std::thread thread_;
};

}  // namespace riskgate::admin
