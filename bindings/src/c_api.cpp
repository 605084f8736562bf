// The C ABI: thin, exception-free wrappers over coamd::Client / Stream / conversions.
#include <algorithm>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "coamd/client.hpp"
#include "coamd/coamd_client.h"
#include "coamd/convert.hpp"
#include "coamd/rig.hpp"
#include "coamd/skeleton.hpp"

struct coamd_client {
  std::unique_ptr<coamd::Client> impl;
};
struct coamd_stream {
  std::unique_ptr<coamd::Stream> impl;
};

namespace {

thread_local std::string g_last_error;

int fail(coamd_status code, const std::string& message) {
  g_last_error = message;
  return code;
}

template <class F>
int guarded(F&& f) {
  try {
    return f();
  } catch (const coamd::Error& e) {
    return fail(e.code(), e.what());
  } catch (const std::bad_alloc&) {
    return fail(COAMD_ERR_INTERNAL, "out of memory");
  } catch (const std::exception& e) {
    return fail(COAMD_ERR_INTERNAL, e.what());
  } catch (...) {
    return fail(COAMD_ERR_INTERNAL, "unknown error");
  }
}

#define COAMD_REQUIRE(cond, msg) \
  do {                           \
    if (!(cond)) return fail(COAMD_ERR_INVALID_ARGUMENT, msg); \
  } while (0)

}  // namespace

extern "C" {

int32_t coamd_abi_version(void) { return COAMD_ABI_VERSION; }
const char* coamd_last_error(void) { return g_last_error.c_str(); }

const char* coamd_joint_name(int32_t j) { return j >= 0 && j < coamd::kNumJoints ? coamd::kJointNames[j] : nullptr; }
int32_t coamd_joint_parent(int32_t j) { return j >= 0 && j < coamd::kNumJoints ? coamd::kParents[j] : -2; }
const char* coamd_unity_humanoid_bone(int32_t j) {
  return j >= 0 && j < coamd::kNumJoints ? coamd::kUnityHumanoidBones[j] : nullptr;
}
const char* coamd_unreal_bone(int32_t j) { return j >= 0 && j < coamd::kNumJoints ? coamd::kUnrealBones[j] : nullptr; }

void coamd_client_options_defaults(coamd_client_options* o) {
  if (!o) return;
  std::memset(o, 0, sizeof(*o));
  o->struct_size = sizeof(*o);
  o->use_tls = 0;
  o->connect_timeout_s = 5.f;
}

int coamd_client_create(const char* target, const coamd_client_options* options, const char* root_certs_pem,
                        const char* bearer_token, coamd_client** out_client) {
  COAMD_REQUIRE(out_client, "out_client is NULL");
  *out_client = nullptr;
  COAMD_REQUIRE(target && *target, "target is NULL or empty; expected host:port");
  coamd_client_options opts;
  coamd_client_options_defaults(&opts);
  if (options) {
    COAMD_REQUIRE(options->struct_size == static_cast<int32_t>(sizeof(coamd_client_options)),
                  "coamd_client_options.struct_size does not match this library (set it to sizeof)");
    opts = *options;
  }
  return guarded([&] {
    auto c = std::make_unique<coamd_client>();
    c->impl = std::make_unique<coamd::Client>(target, opts, root_certs_pem ? root_certs_pem : "",
                                              bearer_token ? bearer_token : "");
    *out_client = c.release();
    return COAMD_OK;
  });
}

void coamd_client_destroy(coamd_client* client) { delete client; }

int coamd_client_skeleton(coamd_client* client, int32_t coords, float* rest_offsets63, int32_t* parents21) {
  COAMD_REQUIRE(client, "client is NULL");
  COAMD_REQUIRE(rest_offsets63, "rest_offsets63 is NULL");
  COAMD_REQUIRE(coamd::valid_coords(coords), "coords is not a coamd_coords value (0, 1, 2)");
  coamd::convert_positions(client->impl->rest_offsets(), coamd::kNumJoints, coamd::Coords::RightHandedYUp,
                           static_cast<coamd::Coords>(coords), rest_offsets63);
  if (parents21) std::memcpy(parents21, coamd::kParents, sizeof(coamd::kParents));
  return COAMD_OK;
}

void coamd_request_defaults(coamd_request* r) {
  if (!r) return;
  std::memset(r, 0, sizeof(*r));
  r->struct_size = sizeof(*r);
  r->duration_s = 4.f;
  r->seed = 0;
  r->guidance = COAMD_GUIDANCE_SERVER_DEFAULT;
  r->order = COAMD_ORDER_SERVER_DEFAULT;
  r->coordinates = COAMD_COORDS_RIGHT_HANDED_Y_UP;
  r->buffering_delay_s = 0.2f;
}

int coamd_stream_start(coamd_client* client, const char* text, const coamd_request* request,
                       coamd_stream** out_stream) {
  COAMD_REQUIRE(out_stream, "out_stream is NULL");
  *out_stream = nullptr;
  COAMD_REQUIRE(client, "client is NULL");
  COAMD_REQUIRE(text, "text is NULL");
  COAMD_REQUIRE(request, "request is NULL");
  COAMD_REQUIRE(request->struct_size == static_cast<int32_t>(sizeof(coamd_request)),
                "coamd_request.struct_size does not match this library (use coamd_request_defaults)");
  return guarded([&] {
    auto s = std::make_unique<coamd_stream>();
    s->impl = client->impl->start(text, *request);
    *out_stream = s.release();
    return COAMD_OK;
  });
}

int coamd_stream_cancel(coamd_stream* stream) {
  COAMD_REQUIRE(stream, "stream is NULL");
  stream->impl->cancel();
  return COAMD_OK;
}

void coamd_stream_destroy(coamd_stream* stream) { delete stream; }

int coamd_stream_sample(coamd_stream* stream, double t, coamd_sample_info* info, float* positions63,
                        float* local84, float* world84) {
  if (!stream) return fail(COAMD_ERR_INVALID_ARGUMENT, "stream is NULL");
  const coamd::SampleInfo s = stream->impl->playback().sample(t, positions63, local84, world84);
  if (info) {
    info->state = static_cast<int32_t>(s.state);
    info->frame = s.frame;
    info->alpha = s.alpha;
    info->motion_time_s = s.motion_time_s;
    info->frames_available = s.frames_available;
    info->total_frames = s.total_frames;
    info->rebuffer_count = s.rebuffer_count;
    info->reserved = 0;
  }
  return COAMD_OK;
}

int coamd_stream_sample_motion_time(coamd_stream* stream, double m, float* positions63, float* local84,
                                    float* world84) {
  COAMD_REQUIRE(stream, "stream is NULL");
  COAMD_REQUIRE(m >= 0.0, "motion_time_s must be >= 0");
  const coamd::FrameBuffer& buf = stream->impl->buffer();
  const uint32_t n = buf.count();
  if (n == 0 || m * coamd::kFps > (n - 1) + 1e-6) {
    return fail(COAMD_ERR_NOT_FOUND, "motion time " + std::to_string(m) + " s is past the " +
                                         std::to_string(n) + " frames received");
  }
  float alpha;
  coamd::interpolate(buf, n, m, coamd::kFps, positions63, local84, world84, &alpha);
  return COAMD_OK;
}

int coamd_stream_frame(coamd_stream* stream, uint32_t index, float* positions63, float* local84) {
  COAMD_REQUIRE(stream, "stream is NULL");
  const coamd::FrameBuffer& buf = stream->impl->buffer();
  if (index >= buf.count()) {
    return fail(COAMD_ERR_NOT_FOUND, "frame " + std::to_string(index) + " not received (" +
                                         std::to_string(buf.count()) + " so far)");
  }
  const coamd::FrameSlot& s = buf.slot(index);
  if (positions63) std::memcpy(positions63, s.positions, sizeof(s.positions));
  if (local84) std::memcpy(local84, s.local, sizeof(s.local));
  return COAMD_OK;
}

int coamd_stream_info_get(coamd_stream* stream, coamd_stream_info* info) {
  COAMD_REQUIRE(stream, "stream is NULL");
  COAMD_REQUIRE(info, "info is NULL");
  COAMD_REQUIRE(info->struct_size == static_cast<int32_t>(sizeof(coamd_stream_info)),
                "coamd_stream_info.struct_size does not match this library (set it to sizeof)");
  const coamd::StreamStats st = stream->impl->stats();
  const coamd::FrameBuffer& buf = stream->impl->buffer();
  info->receiving = stream->impl->receiving() ? 1 : 0;
  info->frames_received = buf.count();
  info->total_frames = buf.status() == coamd::StreamStatus::Complete ? buf.total() : 0;
  info->client_ttff_ms = st.client_ttff_ms;
  info->client_total_ms = info->receiving ? 0.f : st.client_total_ms;
  info->server_ttff_ms = st.server_ttff_ms;
  info->server_total_ms = st.server_total_ms;
  info->server_queue_ms = st.server_queue_ms;
  info->guidance_applied = st.guidance_applied ? 1 : 0;
  info->has_summary = st.has_summary ? 1 : 0;
  info->seed = st.seed;
  return COAMD_OK;
}

int coamd_stream_error(coamd_stream* stream, char* buf, int32_t buf_len) {
  COAMD_REQUIRE(stream, "stream is NULL");
  COAMD_REQUIRE(buf && buf_len > 0, "buf is NULL or buf_len <= 0");
  const coamd::FrameBuffer& b = stream->impl->buffer();
  const std::string msg = b.status() == coamd::StreamStatus::Failed ? b.error() : std::string();
  const size_t n = std::min(static_cast<size_t>(buf_len - 1), msg.size());
  std::memcpy(buf, msg.data(), n);
  buf[n] = '\0';
  return COAMD_OK;
}

int coamd_stream_wait(coamd_stream* stream, float timeout_s) {
  COAMD_REQUIRE(stream, "stream is NULL");
  if (!stream->impl->wait(timeout_s)) {
    return fail(COAMD_ERR_STATE, "the stream was still receiving after " + std::to_string(timeout_s) + " s");
  }
  return COAMD_OK;
}

int coamd_stream_restart_playback(coamd_stream* stream) {
  COAMD_REQUIRE(stream, "stream is NULL");
  stream->impl->playback().restart();
  return COAMD_OK;
}

int coamd_convert_positions(const float* in, int32_t count, int32_t from, int32_t to, float* out) {
  COAMD_REQUIRE(in && out, "in or out is NULL");
  COAMD_REQUIRE(count >= 0, "count must be >= 0");
  COAMD_REQUIRE(coamd::valid_coords(from) && coamd::valid_coords(to), "coords must be 0, 1 or 2 (coamd_coords)");
  coamd::convert_positions(in, count, static_cast<coamd::Coords>(from), static_cast<coamd::Coords>(to), out);
  return COAMD_OK;
}

int coamd_convert_rotations(const float* in, int32_t count, int32_t from, int32_t to, float* out) {
  COAMD_REQUIRE(in && out, "in or out is NULL");
  COAMD_REQUIRE(count >= 0, "count must be >= 0");
  COAMD_REQUIRE(coamd::valid_coords(from) && coamd::valid_coords(to), "coords must be 0, 1 or 2 (coamd_coords)");
  coamd::convert_rotations(in, count, static_cast<coamd::Coords>(from), static_cast<coamd::Coords>(to), out);
  return COAMD_OK;
}

int coamd_solve_rotations(const float* positions63, const float* rest_offsets63, float* local84, float* world84) {
  COAMD_REQUIRE(positions63 && rest_offsets63 && local84, "positions63, rest_offsets63 or local_rotations84 is NULL");
  coamd::solve_rotations(positions63, rest_offsets63, local84, world84);
  return COAMD_OK;
}

int coamd_forward_kinematics(const float* root3, const float* local84, const float* rest_offsets63,
                             float* positions63) {
  COAMD_REQUIRE(root3 && local84 && rest_offsets63 && positions63, "an argument is NULL");
  coamd::forward_kinematics(root3, local84, rest_offsets63, positions63);
  return COAMD_OK;
}

}  // extern "C"
