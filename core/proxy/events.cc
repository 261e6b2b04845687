#include "core/proxy/events.h"

#include <cctype>

namespace flotilla::proxy {
namespace {

// A DNS-1123 subdomain-safe slug of `text`.
std::string slug(std::string_view text) {
  std::string out;
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) {
      out.push_back(static_cast<char>(std::tolower(u)));
    } else if (!out.empty() && out.back() != '-') {
      out.push_back('-');
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

}  // namespace

Status record_service_warning(Store& store, TimePoint now, const api::Service& service,
                              std::string_view component, std::string_view reason,
                              std::string_view message) {
  const std::string ns =
      service.metadata().namespace_().empty() ? "default" : service.metadata().namespace_();
  const std::string name =
      service.metadata().name() + "." + slug(component) + "." + slug(reason);
  auto existing = store.get(api::Kind::kEvent, ns, name);
  if (existing.is_ok()) {
    api::Event event = *api::as<api::Event>(*existing);
    event.set_count(event.count() + 1);
    event.set_message(std::string(message));
    event.mutable_last_timestamp()->set_nanos(to_nanos(now));
    auto updated = store.update(api::share(std::move(event)));
    return updated.status();
  }
  api::Event event;
  event.set_api_version("v1");
  event.set_kind("Event");
  event.mutable_metadata()->set_name(name);
  event.mutable_metadata()->set_namespace_(ns);
  auto* ref = event.mutable_involved_object();
  ref->set_kind("Service");
  ref->set_api_version("v1");
  ref->set_namespace_(ns);
  ref->set_name(service.metadata().name());
  ref->set_uid(service.metadata().uid());
  event.set_type("Warning");
  event.set_reason(std::string(reason));
  event.set_message(std::string(message));
  event.mutable_source()->set_component(std::string(component));
  event.mutable_first_timestamp()->set_nanos(to_nanos(now));
  event.mutable_last_timestamp()->set_nanos(to_nanos(now));
  event.set_count(1);
  event.set_reporting_component(std::string(component));
  auto created = store.create(api::share(std::move(event)));
  return created.status();
}

}  // namespace flotilla::proxy
