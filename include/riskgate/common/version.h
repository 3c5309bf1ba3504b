// What was built: the release and the git commit it came from ("0.1.0+92256bf", "+...-dirty" for
// a tree with uncommitted changes), written at build time (cmake/version.cmake).
#pragma once

namespace riskgate {

const char *version();

}  // namespace riskgate
