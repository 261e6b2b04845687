// Helpers for the persistent store's tests: a temporary directory removed at
// the end, pods to write, and read-only access to the framed records on disk.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "backends/storage/record_io.h"
#include "backends/storage/wal.pb.h"
#include "core/api/object.h"

namespace flotilla::storage::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "flotilla-wal-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) != nullptr ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline api::Object make_pod(const std::string& name, const std::string& image = "nginx:1.25") {
  api::Pod pod;
  pod.mutable_metadata()->set_name(name);
  pod.mutable_metadata()->set_namespace_("default");
  (*pod.mutable_metadata()->mutable_labels())["app"] = "web";
  api::Container* c = pod.mutable_spec()->add_containers();
  c->set_name("main");
  c->set_image(image);
  return api::share(std::move(pod));
}

// Files of `dir` whose names start with `prefix`, sorted.
inline std::vector<std::string> files_with_prefix(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.starts_with(prefix)) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The valid records of a file, read-only, with their offsets.
struct OnDisk {
  size_t offset;
  Record record;
};
inline std::vector<OnDisk> records_of(const std::string& path) {
  std::vector<OnDisk> out;
  StatusOr<std::string> data = read_whole_file(path);
  if (!data.is_ok()) return out;
  size_t at = 0;
  for (;;) {
    Frame f = read_frame(*data, at);
    if (f.status != FrameStatus::kOk) break;
    OnDisk d{at, {}};
    d.record.ParseFromArray(f.payload.data(), static_cast<int>(f.payload.size()));
    out.push_back(std::move(d));
    at = f.next;
  }
  return out;
}

}  // namespace flotilla::storage::testing
