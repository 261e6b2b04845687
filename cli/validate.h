// `flotilla validate FILE...`: decodes every manifest in every file and checks
// it with Kubernetes' validation rules, printing one line per problem.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace flotilla::cli {

// Validates the files; writes "FILE: N objects valid" to `out` for clean files
// and one line per problem or warning to `err`:
//   FILE: Kind/name: field.path: message
//   FILE:LINE: warning: Kind/name: field.path: unknown field
//   FILE:LINE:COL: <syntax or type error>
// Returns the exit code: 0 when every object of every file is valid, else 1.
int run_validate(const std::vector<std::string>& files, std::ostream& out, std::ostream& err);

}  // namespace flotilla::cli
