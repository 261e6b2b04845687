// flotilla/pause: the process that holds a pod sandbox's namespaces. It does
// nothing until TERM or INT (as PID 1 a signal without a handler is ignored,
// so it installs one) and then exits 0. Built static: g++ -static -Os.
#include <signal.h>
#include <unistd.h>

namespace {
void on_signal(int) { _exit(0); }
}  // namespace

int main() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  for (;;) pause();
}
