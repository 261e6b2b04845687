// Test helpers for tests that run `flotilla` as child processes (remote
// agents; tests/backends/apiclient and tests/backends/multihost): where this
// build's binary is, a child process whose output goes to a log file, killed
// when the helper goes, and the FLOTILLA_SKIP_DOCKER switch.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace flotilla::apiclient {

// FLOTILLA_SKIP_DOCKER=1 skips the tests that need the Docker daemon.
inline bool skip_docker() {
  const char* s = std::getenv("FLOTILLA_SKIP_DOCKER");
  return s != nullptr && std::string(s) == "1";
}

// The `flotilla` of this build: $FLOTILLA_BINARY_DIR/cli/flotilla, else found
// from this test's own path (<build>/tests/backends/apiclient/<test>).
inline std::string flotilla_binary() {
  if (const char* bin = std::getenv("FLOTILLA_BINARY_DIR")) {
    return std::string(bin) + "/cli/flotilla";
  }
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "flotilla";
  std::string path(self, static_cast<size_t>(n));
  for (int up = 0; up < 4; ++up) path = path.substr(0, path.rfind('/'));
  return path + "/cli/flotilla";
}

// A child process with its output in a log file.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log) : log_(log) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Child() { kill(SIGKILL); }
  bool started() const { return pid_ > 0; }
  // True while the process runs; reaps it once it exited.
  bool running() {
    if (pid_ <= 0) return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      exit_status_ = status;
      return false;
    }
    return true;
  }
  void kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    if (sig == SIGKILL) {
      ::waitpid(pid_, &exit_status_, 0);
      pid_ = -1;
    }
  }
  int exit_status() const { return exit_status_; }
  std::string output() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int exit_status_ = -1;
};

}  // namespace flotilla::apiclient
