// A test process's scratch directory: `<temp>/flotilla-<tag>-<pid>`, made on
// first use and removed when the process exits if no test failed. When one
// failed it is kept, and its path is printed, so its files can be read.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>

#include <gtest/gtest.h>

namespace flotilla::testing {

inline std::filesystem::path scratch_root(const std::string& tag) {
  struct Root {
    std::filesystem::path path;
    ~Root() {
      // gtest's UnitTest is never destroyed, so it can be asked here.
      if (::testing::UnitTest::GetInstance()->Failed()) {
        std::cerr << "scratch files kept in " << path.string() << "\n";
        return;
      }
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static Root root{std::filesystem::temp_directory_path() /
                   ("flotilla-" + tag + "-" + std::to_string(::getpid()))};
  std::filesystem::create_directories(root.path);
  return root.path;
}

// A fresh, empty directory `name` in the scratch root (a test's own name may
// hold '/', as parameterized ones do; it becomes '_').
inline std::filesystem::path scratch_dir(const std::string& tag, std::string name) {
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  auto dir = scratch_root(tag) / name;
  std::filesystem::remove_all(dir);
  return dir;
}

}  // namespace flotilla::testing
