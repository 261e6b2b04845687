// Graceful pod deletion, the one way every component deletes a pod. A pod that
// never reached a node (or already finished) is removed from the store at once;
// a bound pod is marked Terminating (deletionTimestamp = now + grace) and the
// node agent stops its containers and removes it (uid precondition). Pods on a
// node that is gone for good are force-removed by the node lifecycle controller.
#pragma once

#include <optional>
#include <string_view>

#include "core/api/object.h"
#include "core/ports/store.h"
#include "core/util/status.h"
#include "core/util/time.h"

namespace flotilla::ctrl {

struct PodDeletion {
  enum class Outcome {
    kRemoved,         // gone from the store now
    kMarked,          // deletionTimestamp set (or brought forward) by this call
    kAlreadyMarked,   // was already Terminating with an earlier or equal deadline
  };
  Outcome outcome = Outcome::kRemoved;
  api::Object pod;  // the pod as stored after the call (last state when removed)
};

// The grace period a pod gets when none is asked for: its
// spec.terminationGracePeriodSeconds, else `fallback` (30 s in Kubernetes).
Duration pod_grace_period(const api::Pod& pod, Duration fallback = seconds(30));

// Deletes pod `ns`/`name`. `grace` defaults to pod_grace_period(pod); a zero
// grace removes the pod at once even when bound (a force delete). Idempotent:
// deleting a Terminating pod again only brings its deadline forward. Retries
// optimistic-concurrency conflicts a few times. Errors: kNotFound, kConflict
// (after the retries), or whatever the store returns.
StatusOr<PodDeletion> delete_pod(Store& store, std::string_view ns, std::string_view name,
                                 TimePoint now, std::optional<Duration> grace = std::nullopt);

}  // namespace flotilla::ctrl
