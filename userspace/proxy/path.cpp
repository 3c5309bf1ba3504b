#include "path.h"

#include <cstring>

namespace riskgate::proxy {

namespace {

constexpr char kUpperHex[] = "0123456789ABCDEF";

int hex_value(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// RFC 3986 2.3: the characters whose percent-encoding means the same as the character itself.
bool unreserved(int c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

// Writes one segment's characters (the bytes from `read` up to the next '/' or `end`) canonically at
// `write`, which never passes `read`: each input spelling yields at most as many bytes.
struct SegmentWriter {
  char *target;
  std::size_t end;  // of the path
  const PathOptions &options;
  std::size_t read = 0;
  std::size_t write = 0;

  std::string_view copy_segment()
  {
    while (read < end && target[read] != '/') {
      const char c = target[read];
      if (c == '\\')
        return "backslash in the path";  // a separator to some servers (Windows, IIS), not to the rules
      if (c != '%') {
        target[write++] = c;
        ++read;
        continue;
      }
      const int high = read + 2 < end ? hex_value(target[read + 1]) : -1;
      const int low = read + 2 < end ? hex_value(target[read + 2]) : -1;
      if (high < 0 || low < 0)
        return "invalid percent-encoding in the path";
      read += 3;
      const int byte = high * 16 + low;
      if (byte == 0)
        return "encoded NUL in the path";
      if ((byte == '/' || byte == '\\') && options.reject_encoded_slash)
        return "encoded slash or backslash in the path";
      if (unreserved(byte)) {
        target[write++] = static_cast<char>(byte);
      } else {
        target[write++] = '%';
        target[write++] = kUpperHex[high];
        target[write++] = kUpperHex[low];
      }
    }
    return {};
  }
};

}  // namespace

CanonicalTarget canonicalise_target(char *target, std::size_t length, const PathOptions &options)
{
  const std::string_view original(target, length);
  if (original == "*")
    return {length, {}};
  if (original.find('#') != std::string_view::npos)
    return {0, "fragment in the request-target"};  // not part of one (RFC 9112 3.2)
  const std::size_t path_end = std::min(original.find('?'), length);
  SegmentWriter out{target, path_end, options};
  // Each round takes one "/segment" (the target starts with '/', validate_request saw to it).
  while (out.read < path_end) {
    ++out.read;
    target[out.write++] = '/';
    const std::size_t segment = out.write;
    if (const auto refusal = out.copy_segment(); !refusal.empty())
      return {0, refusal};
    const std::string_view written(target + segment, out.write - segment);
    const bool dot_dot = written == "..";
    if (!dot_dot && written != "." && !(written.empty() && options.merge_slashes))
      continue;
    out.write = segment - 1;  // the segment goes, and its '/'
    if (dot_dot) {
      if (out.write == 0)
        return {0, "path climbs above the root"};
      out.write = std::string_view(target, out.write).rfind('/');  // ...and the one before it
    }
    if (out.read >= path_end)
      target[out.write++] = '/';  // a removed last segment leaves the path ending in '/' (5.2.4)
  }
  std::memmove(target + out.write, target + path_end, length - path_end);
  return {out.write + length - path_end, {}};
}

}  // namespace riskgate::proxy
