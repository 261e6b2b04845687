// Warning Events about Services, written to the Store the way kubectl describe
// shows them. One Event per (object, component, reason): repeats bump its count
// and last timestamp instead of piling up new objects.
#pragma once

#include <string>
#include <string_view>

#include "core/api/object.h"
#include "core/ports/store.h"
#include "core/util/time.h"

namespace flotilla::proxy {

// Records (or bumps) a Warning Event on `service`. `component` names the
// reporter ("service-ip-allocator", "flotilla-proxy/node-1"). Best effort: a
// Store error is returned for the caller to log, never retried here.
Status record_service_warning(Store& store, TimePoint now, const api::Service& service,
                              std::string_view component, std::string_view reason,
                              std::string_view message);

}  // namespace flotilla::proxy
