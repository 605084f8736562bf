#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "real_motions.hpp"

namespace coamd_test {

static std::string g_path;

const std::vector<RealClip>& real_clips() {
  static std::vector<RealClip> clips;
  static bool loaded = false;
  if (loaded) return clips;
  loaded = true;
  std::string path = g_path;
  if (path.empty() && std::getenv("COAMD_REAL_MOTIONS")) path = std::getenv("COAMD_REAL_MOTIONS");
  std::ifstream in(path);
  std::string magic, word;
  int version = 0, n = 0;
  if (!(in >> magic >> version) || magic != "coamd-real-motions" || !(in >> word >> n) || word != "clips") {
    ADD_FAILURE() << "cannot read real motions from '" << path
                  << "' (run via ctest, whose export_real_motions fixture writes them from data/processed)";
    return clips;
  }
  for (int c = 0; c < n; ++c) {
    RealClip clip;
    int t = 0;
    in >> word >> clip.id >> t;
    in >> word;
    clip.rest.resize(63);
    for (float& v : clip.rest) in >> v;
    clip.frames.resize(static_cast<size_t>(t) * 63);
    for (float& v : clip.frames) in >> v;
    if (!in) {
      ADD_FAILURE() << "truncated real motions file " << path;
      clips.clear();
      return clips;
    }
    clips.push_back(std::move(clip));
  }
  return clips;
}

}  // namespace coamd_test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--real-motions=", 15) == 0) coamd_test::g_path = argv[i] + 15;
  }
  return RUN_ALL_TESTS();
}
