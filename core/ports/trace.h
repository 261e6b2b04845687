// TraceSink: where the control plane and the worlds report typed state changes
// (core/api/trace.proto). The simulator writes them to a file of length-delimited
// records; live mode writes the same. Analysis reads nothing else.
#pragma once

#include "core/api/trace.pb.h"

namespace flotilla {

class TraceSink {
 public:
  virtual ~TraceSink() = default;
  // Records one change. Called on the event loop thread only; records arrive in
  // the order of the loop's events and the sink keeps that order. Never fails:
  // a sink that cannot write remembers the error and reports it when closed.
  virtual void record(const trace::Record& r) = 0;
};

// A sink that drops everything, for code paths that need no trace.
class NullTraceSink final : public TraceSink {
 public:
  void record(const trace::Record&) override {}
};

}  // namespace flotilla
