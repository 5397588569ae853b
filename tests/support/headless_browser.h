// Debian's Chromium, headless, driven over the DevTools protocol on a pipe
// (--remote-debugging-pipe: JSON messages ended by NUL on descriptors 3 and 4): no WebSocket,
// no driver to download. For tests of the dashboard.
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "child_process.h"
#include "common/result.h"

namespace tandem::testing {

class HeadlessBrowser {
 public:
  // Starts /usr/bin/chromium with a fresh profile under `work_dir`, one page 1280x900.
  static Result<std::unique_ptr<HeadlessBrowser>> launch(const std::string& work_dir);
  ~HeadlessBrowser();

  Status navigate(const std::string& url);
  // The page's viewport, in CSS pixels (the layout follows at once).
  Status resize(int width, int height);
  // The value of a JavaScript expression (promises awaited); errors for exceptions.
  Result<nlohmann::json> evaluate(const std::string& expression);
  // A real mouse click in the middle of the first element matching `selector`.
  Status click(const std::string& selector);
  // Types text into the focused element, as a keyboard would.
  Status type(const std::string& text);
  // The page as a PNG file.
  Status screenshot(const std::string& path);

 private:
  HeadlessBrowser() = default;
  Result<nlohmann::json> call(const std::string& method, nlohmann::json params,
                              bool in_page = true);

  std::unique_ptr<ChildProcess> process_;
  int to_browser_ = -1;
  int from_browser_ = -1;
  std::string buffer_;
  std::string session_;
  int next_id_ = 1;
};

}  // namespace tandem::testing
