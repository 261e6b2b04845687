// A Store that forwards every call to another: tests derive from it and
// override the one call they make fail, count or change (a refused write, a
// conflict, a copy). get_if_changed is left to the port's default (it asks
// get and compares versions), so a wrapper that changes get sees it used.
#pragma once

#include <functional>
#include <string_view>
#include <utility>

#include "core/ports/store.h"

namespace flotilla::testing {

class ForwardingStore : public Store {
 public:
  explicit ForwardingStore(Store& inner) : inner_(inner) {}

  StatusOr<api::Object> get(api::Kind kind, std::string_view ns,
                            std::string_view name) const override {
    return inner_.get(kind, ns, name);
  }
  StatusOr<ListResult> list(api::Kind kind, const ListOptions& options) const override {
    return inner_.list(kind, options);
  }
  StatusOr<api::Object> create(api::Object object) override {
    return inner_.create(std::move(object));
  }
  StatusOr<api::Object> update(api::Object object) override {
    return inner_.update(std::move(object));
  }
  StatusOr<api::Object> remove(api::Kind kind, std::string_view ns, std::string_view name,
                               const DeleteOptions& options) override {
    return inner_.remove(kind, ns, name, options);
  }
  StatusOr<WatchHandle> watch(api::Kind kind, const WatchOptions& options,
                              std::function<void(const WatchEvent&)> on_event) override {
    return inner_.watch(kind, options, std::move(on_event));
  }
  int64_t resource_version() const override { return inner_.resource_version(); }
  int64_t kind_resource_version(api::Kind kind) const override {
    return inner_.kind_resource_version(kind);
  }

 protected:
  Store& inner() const { return inner_; }

 private:
  Store& inner_;
};

}  // namespace flotilla::testing
