// Engine-side cost of coamd_stream_sample() on a real stream from `coamd serve`, through the C ABI.
//
//   coamd_bench_sample HOST:PORT [--text T] [--duration S] [--iterations N] [--ode-steps N]
//                      [--batches B] [--calls-per-batch C]
//
// Connects, starts one Generate stream and calls sample() in batches of C calls at advancing engine
// times (positions + local + world rotations written), timing each batch with steady_clock, both
// while frames are still arriving (a receiver thread writing concurrently) and after the stream
// ended. Prints one JSON object: microseconds per call (mean over all, p50 / p99 over batches).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "coamd/coamd_client.h"

using Clock = std::chrono::steady_clock;

namespace {
struct Stats {
  double mean = 0, p50 = 0, p99 = 0;
  size_t batches = 0;
};
Stats summarize(std::vector<double> us_per_call) {
  Stats s;
  s.batches = us_per_call.size();
  if (us_per_call.empty()) return s;
  double sum = 0;
  for (double v : us_per_call) sum += v;
  s.mean = sum / us_per_call.size();
  std::sort(us_per_call.begin(), us_per_call.end());
  s.p50 = us_per_call[us_per_call.size() / 2];
  s.p99 = us_per_call[std::min(us_per_call.size() - 1, static_cast<size_t>(us_per_call.size() * 0.99))];
  return s;
}
int die(const char* what) {
  std::fprintf(stderr, "%s: %s\n", what, coamd_last_error());
  return 1;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    std::fprintf(stderr, "usage: %s HOST:PORT [--text T] [--duration S] [--iterations N] [--ode-steps N] "
                         "[--batches B] [--calls-per-batch C]\n", argv[0]);
    return 2;
  }
  std::string target = argv[1], text = "a person walks forward and waves";
  float duration = 4.f;
  unsigned iterations = 0, ode_steps = 0;
  int batches = 2000, per_batch = 100;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--text") text = v;
    else if (k == "--duration") duration = std::strtof(v, nullptr);
    else if (k == "--iterations") iterations = std::strtoul(v, nullptr, 10);
    else if (k == "--ode-steps") ode_steps = std::strtoul(v, nullptr, 10);
    else if (k == "--batches") batches = std::atoi(v);
    else if (k == "--calls-per-batch") per_batch = std::atoi(v);
    else { std::fprintf(stderr, "unknown option %s\n", k.c_str()); return 2; }
  }
  coamd_client_options o;
  coamd_client_options_defaults(&o);
  o.connect_timeout_s = 30.f;
  coamd_client* client = nullptr;
  if (coamd_client_create(target.c_str(), &o, nullptr, nullptr, &client) != COAMD_OK) return die("connect");
  coamd_request r;
  coamd_request_defaults(&r);
  r.duration_s = duration;
  r.iterations = iterations;
  r.ode_steps = ode_steps;
  r.guidance = COAMD_GUIDANCE_OFF;
  r.coordinates = COAMD_COORDS_UNITY;
  coamd_stream* s = nullptr;
  if (coamd_stream_start(client, text.c_str(), &r, &s) != COAMD_OK) return die("start");

  float pos[63], loc[84], wor[84];
  coamd_sample_info info;
  std::vector<double> receiving, ended;
  double t = 0.0;
  const double dt = 1.0 / 600.0;  // engine time advances 1/600 s per call
  // While receiving: batches until the stream ends (a writer thread appends concurrently); only
  // batches that ended with a pose (not the empty buffering phase) are counted.
  coamd_stream_info si;
  si.struct_size = sizeof(si);
  for (;;) {
    coamd_stream_info_get(s, &si);
    if (!si.receiving) break;
    const auto t0 = Clock::now();
    for (int c = 0; c < per_batch; ++c, t += dt) coamd_stream_sample(s, t, &info, pos, loc, wor);
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / per_batch;
    if (info.frame >= 0) receiving.push_back(us);  // count only batches that had frames to interpolate
  }
  char err[512];
  coamd_stream_error(s, err, sizeof(err));
  if (err[0]) {
    std::fprintf(stderr, "stream failed: %s\n", err);
    return 1;
  }
  // After the end: a replay so the calls interpolate (not only hold the last frame).
  coamd_stream_restart_playback(s);
  const double span = si.total_frames / 20.0;
  for (int b = 0; b < batches; ++b) {
    const auto t0 = Clock::now();
    for (int c = 0; c < per_batch; ++c) {
      t += dt;
      coamd_stream_sample(s, t, &info, pos, loc, wor);
      if (info.state == COAMD_STATE_FINISHED && t > span) coamd_stream_restart_playback(s);
    }
    ended.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / per_batch);
  }
  const Stats a = summarize(receiving), b = summarize(ended);
  std::printf("{\"frames\": %u, \"calls_per_batch\": %d, "
              "\"while_receiving\": {\"batches\": %zu, \"mean_us\": %.4f, \"p50_us\": %.4f, \"p99_us\": %.4f}, "
              "\"after_end\": {\"batches\": %zu, \"mean_us\": %.4f, \"p50_us\": %.4f, \"p99_us\": %.4f}}\n",
              si.total_frames, per_batch, a.batches, a.mean, a.p50, a.p99, b.batches, b.mean, b.p50, b.p99);
  coamd_stream_destroy(s);
  coamd_client_destroy(client);
  return 0;
}
