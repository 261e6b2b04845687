#include "core/controllers/pod_deletion.h"

#include <string>

#include "core/api/pod_util.h"

namespace flotilla::ctrl {

Duration pod_grace_period(const api::Pod& pod, Duration fallback) {
  if (pod.spec().has_termination_grace_period_seconds()) {
    int64_t s = pod.spec().termination_grace_period_seconds();
    return seconds(s < 0 ? 0 : s);
  }
  return fallback;
}

StatusOr<PodDeletion> delete_pod(Store& store, std::string_view ns, std::string_view name,
                                 TimePoint now, std::optional<Duration> grace) {
  constexpr int kAttempts = 4;
  Status last;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    StatusOr<api::Object> got = store.get(api::Kind::kPod, ns, name);
    if (!got.is_ok()) return got.status();
    auto pod = api::as<api::Pod>(*got);
    Duration g = grace.has_value() ? *grace : pod_grace_period(*pod);
    if (g < Duration(0)) g = Duration(0);

    if (pod->spec().node_name().empty() || api::is_pod_finished(*pod) || g == Duration(0)) {
      DeleteOptions opts;
      opts.uid = pod->metadata().uid();
      StatusOr<api::Object> removed = store.remove(api::Kind::kPod, ns, name, opts);
      if (removed.is_ok()) return PodDeletion{PodDeletion::Outcome::kRemoved, *removed};
      last = removed.status();
      if (last.code() != StatusCode::kConflict) return last;
      continue;
    }

    int64_t deadline = to_nanos(now + g);
    if (pod->metadata().has_deletion_timestamp() &&
        pod->metadata().deletion_timestamp().nanos() <= deadline) {
      return PodDeletion{PodDeletion::Outcome::kAlreadyMarked, *got};
    }
    api::Pod copy = *pod;
    copy.mutable_metadata()->mutable_deletion_timestamp()->set_nanos(deadline);
    copy.mutable_metadata()->set_deletion_grace_period_seconds(
        std::chrono::duration_cast<seconds>(g).count());
    StatusOr<api::Object> updated = store.update(api::share(std::move(copy)));
    if (updated.is_ok()) return PodDeletion{PodDeletion::Outcome::kMarked, *updated};
    last = updated.status();
    if (last.code() != StatusCode::kConflict) return last;
  }
  return last;
}

}  // namespace flotilla::ctrl
