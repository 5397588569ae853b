#include "headless_browser.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/base64.h"

namespace tandem::testing {
namespace {

using nlohmann::json;

}  // namespace

Result<std::unique_ptr<HeadlessBrowser>> HeadlessBrowser::launch(const std::string& work_dir) {
  int to_browser[2], from_browser[2];
  if (pipe2(to_browser, O_CLOEXEC) != 0 || pipe2(from_browser, O_CLOEXEC) != 0) {
    return fail(ErrorCode::kFailed, "pipe failed");
  }
  std::string profile = work_dir + "/chromium-profile";
  std::filesystem::create_directories(profile);
  std::unique_ptr<HeadlessBrowser> browser(new HeadlessBrowser());
  // As root Chromium needs --no-sandbox; the network flags keep it from calling out (there is
  // no network here, and every attempt would be logged as an error).
  browser->process_ = std::make_unique<ChildProcess>(ChildOptions{
      .program = "/usr/bin/chromium",
      .args = {"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-extensions", "--disable-dev-shm-usage", "--user-data-dir=" + profile,
               "--window-size=1280,900", "--remote-debugging-pipe", "about:blank"},
      // Its shared-memory files go to TMPDIR (--disable-dev-shm-usage): into the work dir, so
      // that nothing is left in /tmp.
      .env = {{"TMPDIR", work_dir}},
      .log_file = work_dir + "/chromium.log",
      .fds = {{3, to_browser[0]}, {4, from_browser[1]}}});
  close(to_browser[0]);
  close(from_browser[1]);
  browser->to_browser_ = to_browser[1];
  browser->from_browser_ = from_browser[0];
  auto target = browser->call("Target.createTarget", {{"url", "about:blank"}}, false);
  if (!target) return fail_with_context(target.error(), "starting chromium");
  auto attached = browser->call("Target.attachToTarget",
                                {{"targetId", (*target)["targetId"]}, {"flatten", true}}, false);
  if (!attached) return std::unexpected(attached.error());
  browser->session_ = (*attached)["sessionId"].get<std::string>();
  for (const char* domain : {"Page.enable", "Runtime.enable"}) {
    if (auto ok = browser->call(domain, json::object()); !ok) return std::unexpected(ok.error());
  }
  if (auto sized = browser->resize(1280, 900); !sized) return std::unexpected(sized.error());
  return browser;
}

Status HeadlessBrowser::resize(int width, int height) {
  auto sized =
      call("Emulation.setDeviceMetricsOverride",
           {{"width", width}, {"height", height}, {"deviceScaleFactor", 1}, {"mobile", false}});
  if (!sized) return std::unexpected(sized.error());
  return {};
}

HeadlessBrowser::~HeadlessBrowser() {
  // Closed politely first: Chromium then removes its temporary files itself.
  if (to_browser_ >= 0 && process_) {
    (void)call("Browser.close", json::object(), false);
    for (int waited = 0; waited < 100 && process_->running(); ++waited) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (to_browser_ >= 0) close(to_browser_);
  if (from_browser_ >= 0) close(from_browser_);
  process_.reset();
}

Result<json> HeadlessBrowser::call(const std::string& method, json params, bool in_page) {
  int id = next_id_++;
  json message = {{"id", id}, {"method", method}, {"params", std::move(params)}};
  if (in_page) message["sessionId"] = session_;
  std::string text = message.dump();
  text.push_back('\0');
  for (std::size_t written = 0; written < text.size();) {
    ssize_t n = write(to_browser_, text.data() + written, text.size() - written);
    if (n <= 0) return fail(ErrorCode::kUnavailable, "chromium's pipe closed");
    written += static_cast<std::size_t>(n);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (true) {
    std::size_t end;
    while ((end = buffer_.find('\0')) != std::string::npos) {
      json reply = json::parse(buffer_.substr(0, end), nullptr, false);
      buffer_.erase(0, end + 1);
      if (!reply.is_object() || reply.value("id", -1) != id) continue;  // events, other replies
      if (reply.contains("error")) {
        return fail(ErrorCode::kFailed,
                    fmt::format("{}: {}", method, reply["error"].value("message", "error")));
      }
      return reply["result"];
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return fail(ErrorCode::kTimeout, method + ": chromium did not answer");
    pollfd entry{from_browser_, POLLIN, 0};
    if (poll(&entry, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[65536];
    ssize_t got = read(from_browser_, chunk, sizeof chunk);
    if (got <= 0) return fail(ErrorCode::kUnavailable, "chromium exited (see chromium.log)");
    buffer_.append(chunk, static_cast<std::size_t>(got));
  }
}

Status HeadlessBrowser::navigate(const std::string& url) {
  auto navigated = call("Page.navigate", {{"url", url}});
  if (!navigated) return std::unexpected(navigated.error());
  if (navigated->contains("errorText")) {
    return fail(ErrorCode::kFailed, url + ": " + (*navigated)["errorText"].get<std::string>());
  }
  return {};
}

Result<json> HeadlessBrowser::evaluate(const std::string& expression) {
  auto evaluated =
      call("Runtime.evaluate",
           {{"expression", expression}, {"returnByValue", true}, {"awaitPromise", true}});
  if (!evaluated) return std::unexpected(evaluated.error());
  if (evaluated->contains("exceptionDetails")) {
    return fail(ErrorCode::kFailed, "JavaScript: " + (*evaluated)["exceptionDetails"].dump());
  }
  return (*evaluated)["result"].value("value", json());
}

Status HeadlessBrowser::click(const std::string& selector) {
  auto box = evaluate(
      fmt::format("(() => {{ const e = document.querySelector({}); if (!e) return null; "
                  "e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); "
                  "return {{x: r.x + r.width / 2, y: r.y + r.height / 2}}; }})()",
                  json(selector).dump()));
  if (!box) return std::unexpected(box.error());
  if (box->is_null()) return fail(ErrorCode::kNotFound, "nothing matches " + selector);
  for (const char* type : {"mousePressed", "mouseReleased"}) {
    auto sent = call("Input.dispatchMouseEvent", {{"type", type},
                                                  {"x", (*box)["x"]},
                                                  {"y", (*box)["y"]},
                                                  {"button", "left"},
                                                  {"clickCount", 1}});
    if (!sent) return std::unexpected(sent.error());
  }
  return {};
}

Status HeadlessBrowser::type(const std::string& text) {
  auto typed = call("Input.insertText", {{"text", text}});
  if (!typed) return std::unexpected(typed.error());
  return {};
}

Status HeadlessBrowser::screenshot(const std::string& path) {
  auto shot = call("Page.captureScreenshot", {{"format", "png"}, {"captureBeyondViewport", true}});
  if (!shot) return std::unexpected(shot.error());
  std::ofstream(path, std::ios::binary)
      << base64_decode((*shot)["data"].get<std::string>()).value_or("");
  return {};
}

}  // namespace tandem::testing
