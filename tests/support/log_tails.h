// On a failure, the last lines of every agent log under a test's directory go to the test's
// output: CI keeps the output, not the directory.
#pragma once

#include <cstddef>
#include <string>

namespace tandem::testing {

// Every file named *.log under `dir` (any depth, etcd's logs excepted): its last `lines` lines,
// without the routine ones ("a standby of", "renew it").
void print_log_tails(const std::string& dir, std::size_t lines = 40);

}  // namespace tandem::testing
