// The C ABI: thin, exception-free wrappers over coamd::Client / Stream / Playback / conversions.
#include <google/protobuf/stubs/common.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "coamd/client.hpp"
#include "coamd/coamd_client.h"
#include "coamd/convert.hpp"
#include "coamd/log.hpp"
#include "coamd/rig.hpp"
#include "coamd/skeleton.hpp"

struct coamd_client {
  std::unique_ptr<coamd::Client> impl;
};
struct coamd_stream {
  std::shared_ptr<coamd::Stream> impl;
};
struct coamd_session {
  std::unique_ptr<coamd::Session> impl;
};
struct coamd_reader {
  coamd_reader(std::shared_ptr<coamd::Stream> s, float delay, std::string name)
      : stream(std::move(s)), playback(stream->buffer(), coamd::kFps, delay), subject(std::move(name)) {}
  std::shared_ptr<coamd::Stream> stream;  // keeps the frames alive
  coamd::Playback playback;
  std::string subject;
};

// The ABI's layouts are fixed: a change here is a break for every compiled caller.
static_assert(sizeof(coamd_client_options) == 16, "coamd_client_options layout");
static_assert(offsetof(coamd_request, capacity_frames) == 56 && offsetof(coamd_request, cleanup) == 60 &&
                  offsetof(coamd_request, temperature) == 64,
              "coamd_request layout");
static_assert(offsetof(coamd_request, text_conditioning) == 68 && sizeof(coamd_request) == 88,
              "coamd_request version-4 layout");
static_assert(offsetof(coamd_request, skeleton) == 72, "version 4's other new fields lie past the version-2 size");
static_assert(sizeof(coamd_sample_info) == 32, "coamd_sample_info layout");
static_assert(offsetof(coamd_stream_info, cleanup_applied) == 56 && offsetof(coamd_stream_info, skeleton_applied) == 88 &&
                  sizeof(coamd_stream_info) == 104,
              "coamd_stream_info layout");
static_assert(offsetof(coamd_frame_info, root_velocity) == 56 && sizeof(coamd_frame_info) == 72,
              "coamd_frame_info layout");
static_assert(sizeof(coamd_capabilities) == 32 && sizeof(coamd_capability) == 344, "coamd_capability layout");
static_assert(sizeof(coamd_interpretation) == 3684, "coamd_interpretation layout");
static_assert(sizeof(coamd_session_options) == 72 && offsetof(coamd_session_options, history_frames) == 64,
              "coamd_session_options layout");
static_assert(sizeof(coamd_session_event) == 24, "coamd_session_event layout");

namespace {

thread_local std::string g_last_error;

// First released size of each versioned struct (the smallest struct_size accepted).
constexpr int32_t kOptionsMinSize = 16;
// Version 1 ended with capacity_frames (offset 56) and was padded to 64 bytes (8-byte alignment):
// its tail padding is where version 2 put `cleanup`.
constexpr int32_t kRequestMinSize = 64;
// Versions 2 and 3 ended with temperature (offset 64) and were padded to 72 bytes: their tail
// padding is where version 4 put `text_conditioning`.
constexpr int32_t kRequestV2Size = 72;
constexpr int32_t kStreamInfoMinSize = static_cast<int32_t>(offsetof(coamd_stream_info, cleanup_applied));
constexpr int32_t kFrameInfoMinSize = static_cast<int32_t>(offsetof(coamd_frame_info, root_velocity));

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

#define COAMD_TRY(expr)             \
  do {                              \
    const int rc_ = (expr);         \
    if (rc_ != COAMD_OK) return rc_; \
  } while (0)

int bad_size(const char* name, int32_t size, int32_t min_size, int32_t max_size) {
  std::string msg = std::string(name) + ".struct_size is " + std::to_string(size) + "; this library (ABI " +
                    std::to_string(COAMD_ABI_VERSION) + ") accepts " + std::to_string(min_size) + " to " +
                    std::to_string(max_size);
  if (size > max_size) msg += " (the caller was built against a newer coamd_client.h: update the library)";
  else msg += " (set it with sizeof or the *_defaults / *_init function)";
  return fail(COAMD_ERR_INVALID_ARGUMENT, msg);
}

// Reads an input struct of any released size over `out` (which holds the defaults).
template <class T>
int read_struct(const T* in, const char* name, int32_t min_size, T* out) {
  const int32_t size = in->struct_size;
  const int32_t max_size = static_cast<int32_t>(sizeof(T));
  if (size < min_size || size > max_size) return bad_size(name, size, min_size, max_size);
  std::memcpy(static_cast<void*>(out), in, static_cast<size_t>(size));
  out->struct_size = max_size;
  return COAMD_OK;
}

// Checks an output struct's size before anything is computed.
template <class T>
int check_out_struct(const T* out, const char* name, int32_t min_size) {
  const int32_t size = out->struct_size;
  const int32_t max_size = static_cast<int32_t>(sizeof(T));
  if (size < min_size || size > max_size) return bad_size(name, size, min_size, max_size);
  return COAMD_OK;
}

// Writes `full` into an output struct up to the caller's struct_size (checked before).
template <class T>
void write_struct(T* out, const T& full) {
  const int32_t size = out->struct_size;
  std::memcpy(static_cast<void*>(out), &full, static_cast<size_t>(size));
  out->struct_size = size;
}

// A float array output: NULL means "not wanted"; otherwise at least `need` floats.
int check_array(const float* p, int32_t len, int32_t need, const char* name) {
  if (p && len < need) {
    return fail(COAMD_ERR_INVALID_ARGUMENT, std::string(name) + " has room for " + std::to_string(len) +
                                                " floats; it needs " + std::to_string(need));
  }
  return COAMD_OK;
}

int check_pose_arrays(const float* pos, int32_t pos_len, const float* local, int32_t local_len, const float* world,
                      int32_t world_len) {
  COAMD_TRY(check_array(pos, pos_len, coamd::kPosFloats, "positions"));
  COAMD_TRY(check_array(local, local_len, coamd::kRotFloats, "local_rotations"));
  return check_array(world, world_len, coamd::kRotFloats, "world_rotations");
}

// Length of the longest prefix of s with at most max_bytes bytes that ends on a UTF-8 boundary.
size_t utf8_prefix(const std::string& s, size_t max_bytes) {
  if (max_bytes >= s.size()) return s.size();
  size_t n = max_bytes;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0u) == 0x80u) --n;  // s[n] continues a character
  return n;
}

// coamd_last_error_copy's contract for any text.
int copy_text(const std::string& text, char* buf, int32_t buf_len, int32_t* out_len, bool set_error) {
  if (buf_len < 0 || (!buf && buf_len != 0)) {
    const char* msg = "buf is NULL with buf_len > 0, or buf_len < 0";
    if (set_error) return fail(COAMD_ERR_INVALID_ARGUMENT, msg);
    return COAMD_ERR_INVALID_ARGUMENT;
  }
  if (out_len) *out_len = static_cast<int32_t>(std::min<size_t>(text.size(), INT32_MAX));
  const bool fits = static_cast<size_t>(buf_len) > text.size();
  if (buf_len > 0) {
    const size_t n = fits ? text.size() : utf8_prefix(text, static_cast<size_t>(buf_len) - 1);
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  if (fits) return COAMD_OK;
  if (set_error) {
    return fail(COAMD_ERR_BUFFER_TOO_SMALL, "the text has " + std::to_string(text.size()) +
                                                " bytes; buf_len must be at least " + std::to_string(text.size() + 1));
  }
  return COAMD_ERR_BUFFER_TOO_SMALL;
}

int32_t state_of(coamd::StreamStatus s) {
  switch (s) {
    case coamd::StreamStatus::Receiving: return COAMD_STATE_PLAYING;
    case coamd::StreamStatus::Complete: return COAMD_STATE_FINISHED;
    case coamd::StreamStatus::Failed: return COAMD_STATE_ERROR;
    default: return COAMD_STATE_CANCELLED;
  }
}

coamd_frame_info frame_info(const coamd::SampleInfo& s, double engine_time, coamd::Coords coords) {
  coamd_frame_info f;
  std::memset(&f, 0, sizeof(f));
  f.struct_size = sizeof(f);
  f.state = static_cast<int32_t>(s.state);
  f.frame = s.frame;
  f.alpha = s.alpha;
  f.motion_time_s = s.motion_time_s;
  f.engine_time_s = engine_time;
  f.frames_available = s.frames_available;
  f.total_frames = s.total_frames;
  f.rebuffer_count = s.rebuffer_count;
  f.num_joints = coamd::kNumJoints;
  f.fps = coamd::kFps;
  f.coords = static_cast<int32_t>(coords);
  for (int k = 0; k < 3; ++k) f.root_velocity[k] = s.root_velocity[k];
  f.heading = s.heading;
  return f;
}

// A text into a fixed char field: NUL-terminated, cut on a UTF-8 boundary.
void put_text(const std::string& text, char* field, size_t size) {
  const size_t n = utf8_prefix(text, size - 1);
  std::memcpy(field, text.data(), n);
  std::memset(field + n, 0, size - n);
}

void fill_interpretation(const coamd::Interpretation& in, coamd_interpretation* out) {
  const int32_t size = out->struct_size;
  coamd_interpretation f;
  std::memset(&f, 0, sizeof(f));
  f.struct_size = sizeof(f);
  const auto labels = [](const std::vector<std::pair<std::string, float>>& v, char* names, float* scores) {
    const size_t n = std::min<size_t>(v.size(), COAMD_INTERPRETATION_MAX_LABELS);
    for (size_t i = 0; i < n; ++i) {
      put_text(v[i].first, names + i * COAMD_LABEL_CHARS, COAMD_LABEL_CHARS);
      scores[i] = v[i].second;
    }
    return static_cast<int32_t>(n);
  };
  f.num_content = labels(in.content, f.content_labels, f.content_scores);
  f.num_style = labels(in.style, f.style_labels, f.style_scores);
  f.out_of_vocabulary = in.out_of_vocabulary ? 1 : 0;
  f.out_of_vocabulary_score = in.out_of_vocabulary_score;
  put_text(in.side, f.side, sizeof(f.side));
  put_text(in.note, f.note, sizeof(f.note));
  put_text(in.conditioned_text, f.conditioned_text, sizeof(f.conditioned_text));
  std::memcpy(static_cast<void*>(out), &f, static_cast<size_t>(size));
  out->struct_size = size;
}

int sample_playhead(coamd::Playback& playback, coamd::Coords coords, double t, coamd_frame_info* info, float* pos,
                    int32_t pos_len, float* local, int32_t local_len, float* world, int32_t world_len);

const std::string& build_info() {
  static const std::string info = [] {
    const int pb = GOOGLE_PROTOBUF_VERSION;
    return std::string("coamd_client ") + COAMD_VERSION_STRING + " (ABI " + std::to_string(COAMD_ABI_VERSION) +
           "; gRPC " + grpc::Version() + "; protobuf " + std::to_string(pb / 1000000) + "." +
           std::to_string(pb / 1000 % 1000) + "." + std::to_string(pb % 1000) + ")";
  }();
  return info;
}

int reference_pose_in(const float* rest_project, int32_t coords, float* rest_out, float* local_out, float* pos_out) {
  float local[coamd::kRotFloats], pos[coamd::kPosFloats];
  coamd::reference_pose(rest_project, local, pos);
  const auto c = static_cast<coamd::Coords>(coords);
  if (rest_out) coamd::convert_positions(rest_project, coamd::kNumJoints, coamd::Coords::RightHandedYUp, c, rest_out);
  if (local_out) coamd::convert_rotations(local, coamd::kNumJoints, coamd::Coords::RightHandedYUp, c, local_out);
  if (pos_out) coamd::convert_positions(pos, coamd::kNumJoints, coamd::Coords::RightHandedYUp, c, pos_out);
  return COAMD_OK;
}

int sample_playhead(coamd::Playback& playback, coamd::Coords coords, double t, coamd_frame_info* info, float* pos,
                    int32_t pos_len, float* local, int32_t local_len, float* world, int32_t world_len) {
  if (info) COAMD_TRY(check_out_struct(info, "coamd_frame_info", kFrameInfoMinSize));
  COAMD_TRY(check_pose_arrays(pos, pos_len, local, local_len, world, world_len));
  const coamd::SampleInfo s = playback.sample(t, pos, local, world);
  if (info) write_struct(info, frame_info(s, t, coords));
  return COAMD_OK;
}

}  // namespace

extern "C" {

int32_t coamd_abi_version(void) { return COAMD_ABI_VERSION; }
const char* coamd_last_error(void) { return g_last_error.c_str(); }
const char* coamd_version(void) { return COAMD_VERSION_STRING; }
const char* coamd_build_info(void) {
  try {
    return build_info().c_str();
  } catch (...) {
    return COAMD_VERSION_STRING;
  }
}

int coamd_set_log_callback(coamd_log_callback callback, int32_t min_level, void* user_data) {
  COAMD_REQUIRE(min_level >= COAMD_LOG_DEBUG && min_level <= COAMD_LOG_OFF,
                "min_level must be a coamd_log_level (0 debug .. 4 off)");
  return guarded([&] {
    coamd::set_log_callback(callback, min_level, user_data);
    return COAMD_OK;
  });
}

int coamd_last_error_copy(char* buf, int32_t buf_len, int32_t* out_len) {
  return copy_text(g_last_error, buf, buf_len, out_len, false);
}

void coamd_frame_info_init(coamd_frame_info* info, int32_t struct_size) {
  if (!info || struct_size < static_cast<int32_t>(sizeof(int32_t))) return;
  std::memset(info, 0, std::min(static_cast<size_t>(struct_size), sizeof(*info)));
  info->struct_size = struct_size;
}

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
  if (options) COAMD_TRY(read_struct(options, "coamd_client_options", kOptionsMinSize, &opts));
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

int coamd_client_reference_pose(coamd_client* client, int32_t coords, float* rest, int32_t rest_len, float* local,
                                int32_t local_len, float* positions, int32_t positions_len) {
  COAMD_REQUIRE(client, "client is NULL");
  COAMD_REQUIRE(coamd::valid_coords(coords), "coords is not a coamd_coords value (0, 1, 2)");
  COAMD_TRY(check_array(rest, rest_len, coamd::kPosFloats, "rest_offsets"));
  COAMD_TRY(check_array(local, local_len, coamd::kRotFloats, "reference_local_rotations"));
  COAMD_TRY(check_array(positions, positions_len, coamd::kPosFloats, "reference_positions"));
  return reference_pose_in(client->impl->rest_offsets(), coords, rest, local, positions);
}

namespace {
coamd_request default_request() {
  coamd_request r;
  std::memset(&r, 0, sizeof(r));
  r.struct_size = sizeof(r);
  r.duration_s = 4.f;
  r.seed = 0;
  r.guidance = COAMD_GUIDANCE_SERVER_DEFAULT;
  r.order = COAMD_ORDER_SERVER_DEFAULT;
  r.coordinates = COAMD_COORDS_RIGHT_HANDED_Y_UP;
  r.buffering_delay_s = 0.2f;
  r.cleanup = COAMD_CLEANUP_SERVER_DEFAULT;
  r.temperature = 0.f;
  return r;
}
}  // namespace

void coamd_request_defaults(coamd_request* r) {
  if (!r) return;
  // The version-1 size only: a caller built against version 1 has a 64-byte struct.
  const coamd_request d = default_request();
  std::memcpy(static_cast<void*>(r), &d, kRequestMinSize);
  r->struct_size = kRequestMinSize;
}

int coamd_request_init(coamd_request* r, int32_t struct_size) {
  COAMD_REQUIRE(r, "request is NULL");
  if (struct_size < kRequestMinSize || struct_size > static_cast<int32_t>(sizeof(coamd_request))) {
    return bad_size("coamd_request", struct_size, kRequestMinSize, sizeof(coamd_request));
  }
  const coamd_request d = default_request();
  std::memcpy(static_cast<void*>(r), &d, static_cast<size_t>(struct_size));
  r->struct_size = struct_size;
  return COAMD_OK;
}

int coamd_stream_start(coamd_client* client, const char* text, const coamd_request* request,
                       coamd_stream** out_stream) {
  COAMD_REQUIRE(out_stream, "out_stream is NULL");
  *out_stream = nullptr;
  COAMD_REQUIRE(client, "client is NULL");
  COAMD_REQUIRE(text, "text is NULL");
  COAMD_REQUIRE(request, "request is NULL");
  coamd_request req = default_request();
  COAMD_TRY(read_struct(request, "coamd_request", kRequestMinSize, &req));
  if (request->struct_size == kRequestMinSize &&
      (req.cleanup < COAMD_CLEANUP_SERVER_DEFAULT || req.cleanup > COAMD_CLEANUP_OFF)) {
    req.cleanup = COAMD_CLEANUP_SERVER_DEFAULT;  // a version-1 struct's tail padding, not a value
  }
  if (request->struct_size <= kRequestV2Size) {
    // A version-2/3 struct's tail padding (never written by such a caller), not a value.
    req.text_conditioning = COAMD_TEXT_CONDITIONING_SERVER_DEFAULT;
  }
  return guarded([&] {
    auto s = std::make_unique<coamd_stream>();
    s->impl = client->impl->start(text, req);
    *out_stream = s.release();
    return COAMD_OK;
  });
}

int coamd_stream_cancel(coamd_stream* stream) {
  COAMD_REQUIRE(stream, "stream is NULL");
  stream->impl->cancel();
  return COAMD_OK;
}

void coamd_stream_destroy(coamd_stream* stream) {
  if (!stream) return;
  stream->impl->cancel();  // readers may keep the frames; the RPC stops now
  delete stream;
}

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

int coamd_stream_sample_at(coamd_stream* stream, double m, coamd_frame_info* info, float* pos, int32_t pos_len,
                           float* local, int32_t local_len, float* world, int32_t world_len) {
  COAMD_REQUIRE(stream, "stream is NULL");
  COAMD_REQUIRE(m >= 0.0, "motion_time_s must be >= 0");
  if (info) COAMD_TRY(check_out_struct(info, "coamd_frame_info", kFrameInfoMinSize));
  COAMD_TRY(check_pose_arrays(pos, pos_len, local, local_len, world, world_len));
  const coamd::FrameBuffer& buf = stream->impl->buffer();
  const coamd::StreamStatus status = buf.status();  // before count: a terminal status covers all frames
  const uint32_t n = buf.count();
  if (n == 0 || m * coamd::kFps > (n - 1) + 1e-6) {
    return fail(COAMD_ERR_NOT_FOUND, "motion time " + std::to_string(m) + " s is past the " +
                                         std::to_string(n) + " frames received");
  }
  coamd::SampleInfo s;
  s.frame = coamd::interpolate(buf, n, m, coamd::kFps, pos, local, world, &s.alpha, s.root_velocity, &s.heading);
  s.state = static_cast<coamd::PlayState>(state_of(status));
  s.motion_time_s = static_cast<float>(m);
  s.frames_available = n;
  s.total_frames = status == coamd::StreamStatus::Complete ? buf.total() : 0;
  if (info) {
    coamd_frame_info f = frame_info(s, 0.0, stream->impl->coords());
    f.motion_time_s = m;
    write_struct(info, f);
  }
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

int coamd_stream_frame_copy(coamd_stream* stream, uint32_t index, float* pos, int32_t pos_len, float* local,
                            int32_t local_len) {
  COAMD_REQUIRE(stream, "stream is NULL");
  COAMD_TRY(check_array(pos, pos_len, coamd::kPosFloats, "positions"));
  COAMD_TRY(check_array(local, local_len, coamd::kRotFloats, "local_rotations"));
  return coamd_stream_frame(stream, index, pos, local);
}

int coamd_stream_info_get(coamd_stream* stream, coamd_stream_info* info) {
  COAMD_REQUIRE(stream, "stream is NULL");
  COAMD_REQUIRE(info, "info is NULL");
  COAMD_TRY(check_out_struct(info, "coamd_stream_info", kStreamInfoMinSize));
  const coamd::StreamStats st = stream->impl->stats();
  const coamd::FrameBuffer& buf = stream->impl->buffer();
  coamd_stream_info f;
  std::memset(&f, 0, sizeof(f));
  f.struct_size = sizeof(f);
  f.receiving = stream->impl->receiving() ? 1 : 0;
  f.frames_received = buf.count();
  f.total_frames = buf.status() == coamd::StreamStatus::Complete ? buf.total() : 0;
  f.client_ttff_ms = st.client_ttff_ms;
  f.client_total_ms = f.receiving ? 0.f : st.client_total_ms;
  f.server_ttff_ms = st.server_ttff_ms;
  f.server_total_ms = st.server_total_ms;
  f.server_queue_ms = st.server_queue_ms;
  f.guidance_applied = st.guidance_applied ? 1 : 0;
  f.has_summary = st.has_summary ? 1 : 0;
  f.seed = st.seed;
  f.cleanup_applied = st.cleanup_applied ? 1 : 0;
  f.temperature = st.temperature;
  f.iterations = st.iterations;
  f.ode_steps = st.ode_steps;
  f.cfg_scale = st.cfg_scale;
  f.guidance_scale = st.guidance_scale;
  f.max_batch = st.max_batch;
  f.skeleton_applied = st.skeleton_applied ? 1 : 0;
  f.root_motion = st.root_motion;
  f.out_of_vocabulary = st.interpretation.out_of_vocabulary ? 1 : 0;
  f.out_of_vocabulary_score = st.interpretation.out_of_vocabulary_score;
  write_struct(info, f);
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

int coamd_stream_error_copy(coamd_stream* stream, char* buf, int32_t buf_len, int32_t* out_len) {
  COAMD_REQUIRE(stream, "stream is NULL");
  const coamd::FrameBuffer& b = stream->impl->buffer();
  return guarded([&] {
    const std::string msg = b.status() == coamd::StreamStatus::Failed ? b.error() : std::string();
    return copy_text(msg, buf, buf_len, out_len, true);
  });
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

int coamd_reader_create(coamd_stream* stream, const char* subject_name, float buffering_delay_s,
                        coamd_reader** out_reader) {
  COAMD_REQUIRE(out_reader, "out_reader is NULL");
  *out_reader = nullptr;
  COAMD_REQUIRE(stream, "stream is NULL");
  COAMD_REQUIRE(!(buffering_delay_s > 60.f), "buffering_delay_s must be at most 60 seconds");
  return guarded([&] {
    const float delay = buffering_delay_s >= 0.f ? buffering_delay_s : stream->impl->buffering_delay_s();
    std::string name = subject_name && *subject_name ? subject_name : "CoAMD";
    *out_reader = new coamd_reader(stream->impl, delay, std::move(name));
    return COAMD_OK;
  });
}

void coamd_reader_destroy(coamd_reader* reader) { delete reader; }

const char* coamd_reader_subject_name(coamd_reader* reader) { return reader ? reader->subject.c_str() : nullptr; }

int coamd_reader_sample(coamd_reader* reader, double t, coamd_frame_info* info, float* pos, int32_t pos_len,
                        float* local, int32_t local_len, float* world, int32_t world_len) {
  COAMD_REQUIRE(reader, "reader is NULL");
  return sample_playhead(reader->playback, reader->stream->coords(), t, info, pos, pos_len, local, local_len, world,
                         world_len);
}

int coamd_reader_restart(coamd_reader* reader) {
  COAMD_REQUIRE(reader, "reader is NULL");
  reader->playback.restart();
  return COAMD_OK;
}

int coamd_client_capabilities(coamd_client* client, coamd_capabilities* caps, coamd_capability* actions,
                              int32_t actions_len, coamd_capability* styles, int32_t styles_len) {
  COAMD_REQUIRE(client, "client is NULL");
  COAMD_REQUIRE(caps, "caps is NULL");
  COAMD_TRY(check_out_struct(caps, "coamd_capabilities", static_cast<int32_t>(sizeof(coamd_capabilities))));
  COAMD_REQUIRE(actions_len >= 0 && styles_len >= 0, "actions_len and styles_len must be >= 0");
  COAMD_REQUIRE((actions || actions_len == 0) && (styles || styles_len == 0), "an array is NULL with a length > 0");
  constexpr int32_t kCapSize = static_cast<int32_t>(sizeof(coamd_capability));
  if (actions && actions_len > 0) COAMD_TRY(check_out_struct(actions, "coamd_capability", kCapSize));
  if (styles && styles_len > 0) COAMD_TRY(check_out_struct(styles, "coamd_capability", kCapSize));
  return guarded([&] {
    const coamd::Capabilities& c = client->impl->capabilities();
    coamd_capabilities f;
    std::memset(&f, 0, sizeof(f));
    f.struct_size = sizeof(f);
    f.num_actions = static_cast<int32_t>(c.actions.size());
    f.num_styles = static_cast<int32_t>(c.styles.size());
    f.min_duration_s = c.min_duration_s;
    f.max_duration_s = c.max_duration_s;
    f.fps = c.fps;
    f.max_text_chars = c.max_text_chars;
    f.rare_below_clips = c.rare_below_clips;
    write_struct(caps, f);
    const auto fill = [](const std::vector<coamd::Capability>& in, coamd_capability* out, int32_t len) {
      const size_t n = std::min<size_t>(in.size(), static_cast<size_t>(len));
      for (size_t i = 0; i < n; ++i) {
        coamd_capability& e = out[i];
        e.struct_size = sizeof(e);
        e.training_clips = in[i].training_clips;
        put_text(in[i].label, e.label, sizeof(e.label));
        put_text(in[i].side, e.side, sizeof(e.side));
        put_text(in[i].description, e.description, sizeof(e.description));
      }
    };
    if (actions) fill(c.actions, actions, actions_len);
    if (styles) fill(c.styles, styles, styles_len);
    return COAMD_OK;
  });
}

int coamd_client_pair_clips(coamd_client* client, uint32_t* counts, int32_t counts_len, int32_t* num_pairs) {
  COAMD_REQUIRE(client, "client is NULL");
  COAMD_REQUIRE(num_pairs, "num_pairs is NULL");
  COAMD_REQUIRE(counts_len >= 0, "counts_len must be >= 0");
  COAMD_REQUIRE(counts || counts_len == 0, "counts is NULL with counts_len > 0");
  return guarded([&] {
    const coamd::Capabilities& c = client->impl->capabilities();
    const size_t styles = c.styles.size();
    *num_pairs = static_cast<int32_t>(c.actions.size() * styles);
    const size_t n = std::min<size_t>(static_cast<size_t>(*num_pairs), static_cast<size_t>(counts_len));
    if (n > 0) std::fill(counts, counts + n, 0u);
    for (size_t a = 0; a < c.actions.size(); ++a) {
      for (const auto& pair : c.actions[a].recorded_with) {
        for (size_t s = 0; s < styles; ++s) {
          if (c.styles[s].label == pair.first && a * styles + s < n) counts[a * styles + s] = pair.second;
        }
      }
    }
    return static_cast<int>(COAMD_OK);
  });
}

int coamd_stream_interpretation(coamd_stream* stream, coamd_interpretation* out) {
  COAMD_REQUIRE(stream, "stream is NULL");
  COAMD_REQUIRE(out, "out is NULL");
  COAMD_TRY(check_out_struct(out, "coamd_interpretation", static_cast<int32_t>(sizeof(coamd_interpretation))));
  return guarded([&] {
    const coamd::StreamStats st = stream->impl->stats();
    if (!st.has_interpretation) {
      return fail(COAMD_ERR_NOT_FOUND, st.has_summary ? "the server's summary has no interpretation"
                                                      : "the summary has not arrived yet");
    }
    fill_interpretation(st.interpretation, out);
    return static_cast<int>(COAMD_OK);
  });
}

namespace {
coamd_session_options default_session_options() {
  coamd_session_options o;
  std::memset(&o, 0, sizeof(o));
  o.struct_size = sizeof(o);
  o.coordinates = COAMD_COORDS_RIGHT_HANDED_Y_UP;
  o.buffering_delay_s = 0.2f;
  o.history_frames = 1200;
  return o;
}
constexpr int32_t kSessionOptionsMinSize = static_cast<int32_t>(sizeof(coamd_session_options));
}  // namespace

int coamd_session_options_init(coamd_session_options* o, int32_t struct_size) {
  COAMD_REQUIRE(o, "options is NULL");
  if (struct_size < kSessionOptionsMinSize || struct_size > static_cast<int32_t>(sizeof(coamd_session_options))) {
    return bad_size("coamd_session_options", struct_size, kSessionOptionsMinSize, sizeof(coamd_session_options));
  }
  const coamd_session_options d = default_session_options();
  std::memcpy(static_cast<void*>(o), &d, static_cast<size_t>(struct_size));
  o->struct_size = struct_size;
  return COAMD_OK;
}

int coamd_session_open(coamd_client* client, const coamd_session_options* options, const char* text,
                       coamd_session** out_session) {
  COAMD_REQUIRE(out_session, "out_session is NULL");
  *out_session = nullptr;
  COAMD_REQUIRE(client, "client is NULL");
  COAMD_REQUIRE(text, "text is NULL");
  coamd_session_options o = default_session_options();
  if (options) COAMD_TRY(read_struct(options, "coamd_session_options", kSessionOptionsMinSize, &o));
  return guarded([&] {
    auto s = std::make_unique<coamd_session>();
    s->impl = client->impl->open_session(text, o);
    *out_session = s.release();
    return COAMD_OK;
  });
}

int coamd_session_instruct(coamd_session* session, const char* text, uint32_t* out_instruction) {
  COAMD_REQUIRE(session, "session is NULL");
  COAMD_REQUIRE(text, "text is NULL");
  return guarded([&] {
    const uint32_t n = session->impl->instruct(text);
    if (out_instruction) *out_instruction = n;
    return COAMD_OK;
  });
}

int coamd_session_close(coamd_session* session) {
  COAMD_REQUIRE(session, "session is NULL");
  return guarded([&] {
    session->impl->close();
    return COAMD_OK;
  });
}

int coamd_session_cancel(coamd_session* session) {
  COAMD_REQUIRE(session, "session is NULL");
  session->impl->cancel();
  return COAMD_OK;
}

void coamd_session_destroy(coamd_session* session) { delete session; }

int coamd_session_sample(coamd_session* session, double t, coamd_frame_info* info, float* pos, int32_t pos_len,
                         float* local, int32_t local_len, float* world, int32_t world_len) {
  COAMD_REQUIRE(session, "session is NULL");
  return sample_playhead(session->impl->playback(), session->impl->coords(), t, info, pos, pos_len, local, local_len,
                         world, world_len);
}

int coamd_session_next_event(coamd_session* session, coamd_session_event* event, coamd_interpretation* interp) {
  COAMD_REQUIRE(session, "session is NULL");
  COAMD_REQUIRE(event, "event is NULL");
  COAMD_TRY(check_out_struct(event, "coamd_session_event", static_cast<int32_t>(sizeof(coamd_session_event))));
  if (interp) {
    COAMD_TRY(check_out_struct(interp, "coamd_interpretation", static_cast<int32_t>(sizeof(coamd_interpretation))));
  }
  return guarded([&] {
    coamd::SessionEvent e;
    if (!session->impl->next_event(&e)) return static_cast<int>(COAMD_ERR_NOT_FOUND);
    coamd_session_event f;
    std::memset(&f, 0, sizeof(f));
    f.struct_size = sizeof(f);
    f.kind = e.kind;
    f.instruction = e.instruction;
    f.first_frame = e.first_frame;
    f.latency_ms = e.latency_ms;
    f.has_interpretation = e.has_interpretation ? 1 : 0;
    write_struct(event, f);
    if (interp && e.has_interpretation) fill_interpretation(e.interpretation, interp);
    return static_cast<int>(COAMD_OK);
  });
}

int coamd_session_wait(coamd_session* session, float timeout_s) {
  COAMD_REQUIRE(session, "session is NULL");
  if (!session->impl->wait(timeout_s)) {
    return fail(COAMD_ERR_STATE, "the session was still receiving after " + std::to_string(timeout_s) + " s");
  }
  return COAMD_OK;
}

int coamd_session_error_copy(coamd_session* session, char* buf, int32_t buf_len, int32_t* out_len) {
  COAMD_REQUIRE(session, "session is NULL");
  const coamd::FrameBuffer& b = session->impl->buffer();
  return guarded([&] {
    const std::string msg = b.status() == coamd::StreamStatus::Failed ? b.error() : std::string();
    return copy_text(msg, buf, buf_len, out_len, true);
  });
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

int coamd_reference_pose(const float* rest, int32_t rest_len, int32_t coords, float* local, int32_t local_len,
                         float* positions, int32_t positions_len) {
  COAMD_REQUIRE(rest, "rest_offsets is NULL");
  COAMD_REQUIRE(rest_len >= coamd::kPosFloats, "rest_offsets must have 63 floats");
  COAMD_REQUIRE(coamd::valid_coords(coords), "coords is not a coamd_coords value (0, 1, 2)");
  COAMD_TRY(check_array(local, local_len, coamd::kRotFloats, "reference_local_rotations"));
  COAMD_TRY(check_array(positions, positions_len, coamd::kPosFloats, "reference_positions"));
  float project[coamd::kPosFloats];
  coamd::convert_positions(rest, coamd::kNumJoints, static_cast<coamd::Coords>(coords), coamd::Coords::RightHandedYUp,
                           project);
  return reference_pose_in(project, coords, nullptr, local, positions);
}

}  // extern "C"
