// What every controller is given: the ports it talks through and the timing
// profile. Borrowed references; the caller keeps them alive longer than the
// controllers.
#pragma once

#include "core/ports/event_loop.h"
#include "core/ports/store.h"
#include "core/ports/trace.h"
#include "core/timing/timing.h"

namespace flotilla::ctrl {

struct ControllerContext {
  Store& store;
  EventLoop& loop;
  TraceSink& trace;
  TimingProfile timing;
};

}  // namespace flotilla::ctrl
