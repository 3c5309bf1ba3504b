#include <riskgate/identity/jwks_url.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include <riskgate/identity/encoding.h>

namespace riskgate::identity {

JwksUrl::JwksUrl(std::string url, std::shared_ptr<KeyStore> keys, JwksUrlOptions options)
    : url_(std::move(url)), keys_(std::move(keys)), options_(std::move(options))
{
}

Result<bool> JwksUrl::load_cache()
{
  if (options_.cache_file.empty())
    return false;
  std::optional<FileStamp> none;
  auto text = read_if_changed(options_.cache_file, none);
  if (!text)
    return errno == ENOENT ? Result<bool>(false) : Result<bool>(make_error("JWKS cache " + text.error()));
  auto keys = KeySet::parse(**text, options_.cache_file);
  if (!keys)
    return make_error(keys.error());
  keys_->replace(KeyStore::Slot::url, std::move(*keys));
  last_body_ = std::move(**text);
  return true;
}

Result<bool> JwksUrl::poll(std::chrono::steady_clock::time_point now)
{
  if (next_ && now < *next_)
    return false;
  next_ = now + options_.retry;  // until a fetch succeeds
  auto url = parse_https_url(url_);
  if (!url)
    return make_error(fmt::format("JWKS URL {}: {}", url_, url.error()));
  HttpsRequest request{*url, options_.ca_file, "", options_.timeout, options_.max_bytes};
  auto response = https_get(request);
  if (!response)
    return make_error(fmt::format("JWKS {} (previous keys stay in force)", response.error()));
  if (response->status != 200)
    return make_error(fmt::format("JWKS {}: HTTP {} (previous keys stay in force)", url_, response->status));
  next_ = now + options_.interval;
  if (response->body == last_body_)
    return false;
  auto keys = KeySet::parse(response->body, url_);
  if (!keys)
    return make_error(keys.error() + " (previous keys stay in force)");
  keys_->replace(KeyStore::Slot::url, std::move(*keys));
  last_body_ = std::move(response->body);
  if (!options_.cache_file.empty()) {
    const std::string tmp = options_.cache_file + ".tmp";
    std::ofstream(tmp, std::ios::trunc) << last_body_;
    std::error_code ec;
    std::filesystem::rename(tmp, options_.cache_file, ec);
    if (ec)
      return make_error(
          fmt::format("JWKS cache {}: {} (keys are in force)", options_.cache_file, ec.message()));
  }
  return true;
}

}  // namespace riskgate::identity
