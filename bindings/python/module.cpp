// coamd_native: the C ABI (bindings/include/coamd/coamd_client.h) for Python tests and tools.
// Every call goes through the same extern "C" functions that Unity and Unreal use.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <functional>
#include <stdexcept>
#include <string>

#include "coamd/coamd_client.h"

namespace py = pybind11;
using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;

namespace {

void check(int rc) {
  if (rc == COAMD_OK) return;
  const std::string msg = coamd_last_error();
  switch (rc) {
    case COAMD_ERR_INVALID_ARGUMENT: throw py::value_error(msg);
    case COAMD_ERR_NOT_FOUND: throw py::index_error(msg);
    case COAMD_ERR_STATE: throw py::value_error(msg);  // e.g. wait() timed out
    case COAMD_ERR_CONNECT: throw std::runtime_error("connect: " + msg);
    default: throw std::runtime_error(msg);
  }
}

const float* need(const F32& a, py::ssize_t size, const char* what) {
  if (a.size() != size) {
    throw py::value_error(std::string(what) + " must have " + std::to_string(size) + " floats, got " +
                          std::to_string(a.size()));
  }
  return a.data();
}

py::dict info_dict(const coamd_sample_info& i) {
  py::dict d;
  d["state"] = i.state;
  d["frame"] = i.frame;
  d["alpha"] = i.alpha;
  d["motion_time_s"] = i.motion_time_s;
  d["frames_available"] = i.frames_available;
  d["total_frames"] = i.total_frames;
  d["rebuffer_count"] = i.rebuffer_count;
  return d;
}

py::dict frame_info_dict(const coamd_frame_info& i) {
  py::dict d;
  d["state"] = i.state;
  d["frame"] = i.frame;
  d["alpha"] = i.alpha;
  d["motion_time_s"] = i.motion_time_s;
  d["engine_time_s"] = i.engine_time_s;
  d["frames_available"] = i.frames_available;
  d["total_frames"] = i.total_frames;
  d["rebuffer_count"] = i.rebuffer_count;
  d["coords"] = i.coords;
  d["root_velocity"] = py::make_tuple(i.root_velocity[0], i.root_velocity[1], i.root_velocity[2]);
  d["heading"] = i.heading;
  return d;
}

py::dict interpretation_dict(const coamd_interpretation& i) {
  py::dict d;
  py::list content, style;
  for (int k = 0; k < i.num_content; ++k)
    content.append(py::make_tuple(std::string(i.content_labels + k * COAMD_LABEL_CHARS), i.content_scores[k]));
  for (int k = 0; k < i.num_style; ++k)
    style.append(py::make_tuple(std::string(i.style_labels + k * COAMD_LABEL_CHARS), i.style_scores[k]));
  d["content"] = content;
  d["style"] = style;
  d["side"] = std::string(i.side);
  d["out_of_vocabulary"] = bool(i.out_of_vocabulary);
  d["out_of_vocabulary_score"] = i.out_of_vocabulary_score;
  d["note"] = std::string(i.note);
  d["conditioned_text"] = std::string(i.conditioned_text);
  return d;
}

// Zeroed pose outputs: positions (21, 3), local and world rotations (21, 4).
struct PoseArrays {
  F32 pos, loc, wor;
  PoseArrays() : pos({21, 3}), loc({21, 4}), wor({21, 4}) {
    for (F32* a : {&pos, &loc, &wor}) std::fill(a->mutable_data(), a->mutable_data() + a->size(), 0.f);
  }
};

py::tuple sample_tuple(const std::function<int(coamd_frame_info*, float*, float*, float*)>& f) {
  coamd_frame_info info;
  coamd_frame_info_init(&info, sizeof(info));
  PoseArrays a;
  check(f(&info, a.pos.mutable_data(), a.loc.mutable_data(), a.wor.mutable_data()));
  return py::make_tuple(frame_info_dict(info), a.pos, a.loc, a.wor);
}

// f() with the GIL released (a call that may block on the network); its status comes back with the
// GIL held again.
template <class F>
int without_gil(F&& f) {
  py::gil_scoped_release release;
  return f();
}

// check() for a wait (coamd_stream_wait, coamd_session_wait): false when it timed out.
bool waited(int rc) {
  if (rc == COAMD_ERR_STATE) return false;
  check(rc);
  return true;
}

// The whole text of a (buf, buf_len, &len) copy function (coamd_stream_error_copy,
// coamd_session_error_copy), however long.
template <class Copy>
std::string copy_text(Copy&& copy) {
  int32_t len = 0;
  const int rc = copy(nullptr, 0, &len);
  if (rc != COAMD_OK && rc != COAMD_ERR_BUFFER_TOO_SMALL) check(rc);
  std::string buf(static_cast<size_t>(len) + 1, '\0');
  check(copy(&buf[0], len + 1, &len));
  buf.resize(static_cast<size_t>(len));
  return buf;
}

// The settings a Generate request and a session share: fields of the same name in coamd_request and
// coamd_session_options, from the keyword arguments of that name.
template <class Settings>
void set_shared(Settings& s, uint64_t seed, int guidance, float guidance_scale, float cfg_scale, uint32_t iterations,
                uint32_t ode_steps, int coordinates, bool server_rotations, int cleanup, float temperature,
                int text_conditioning, int root_motion, float buffering_delay_s) {
  s.seed = seed;
  s.guidance = guidance;
  s.guidance_scale = guidance_scale;
  s.cfg_scale = cfg_scale;
  s.iterations = iterations;
  s.ode_steps = ode_steps;
  s.coordinates = coordinates;
  s.server_rotations = server_rotations ? 1 : 0;
  s.cleanup = cleanup;
  s.temperature = temperature;
  s.text_conditioning = text_conditioning;
  s.root_motion = root_motion;
  s.buffering_delay_s = buffering_delay_s;
}

// An independent playhead over a stream's frames (coamd_reader); keeps the frames alive.
class Reader {
 public:
  explicit Reader(coamd_reader* r) : r_(r) {}
  ~Reader() { coamd_reader_destroy(r_); }
  Reader(const Reader&) = delete;
  std::string subject_name() const { return coamd_reader_subject_name(r_); }
  // (info dict, positions (21,3), local rotations (21,4), world rotations (21,4))
  py::tuple sample(double t) {
    return sample_tuple([&](coamd_frame_info* info, float* p, float* l, float* w) {
      return coamd_reader_sample(r_, t, info, p, 63, l, 84, w, 84);
    });
  }
  void restart() { check(coamd_reader_restart(r_)); }

 private:
  coamd_reader* r_;
};

class Stream {
 public:
  explicit Stream(coamd_stream* s) : s_(s) {}
  ~Stream() { coamd_stream_destroy(s_); }
  Stream(const Stream&) = delete;

  // (info dict, positions (21,3), local rotations (21,4), world rotations (21,4))
  py::tuple sample(double t) {
    coamd_sample_info info{};
    PoseArrays a;
    check(coamd_stream_sample(s_, t, &info, a.pos.mutable_data(), a.loc.mutable_data(), a.wor.mutable_data()));
    return py::make_tuple(info_dict(info), a.pos, a.loc, a.wor);
  }
  // Only the info (no pose copies): for timing the engine-side cost.
  py::dict sample_info(double t) {
    coamd_sample_info info{};
    check(coamd_stream_sample(s_, t, &info, nullptr, nullptr, nullptr));
    return info_dict(info);
  }
  py::tuple sample_motion_time(double m) {
    F32 pos({21, 3}), loc({21, 4}), wor({21, 4});
    check(coamd_stream_sample_motion_time(s_, m, pos.mutable_data(), loc.mutable_data(), wor.mutable_data()));
    return py::make_tuple(pos, loc, wor);
  }
  py::tuple frame(uint32_t index) {
    F32 pos({21, 3}), loc({21, 4});
    check(coamd_stream_frame(s_, index, pos.mutable_data(), loc.mutable_data()));
    return py::make_tuple(pos, loc);
  }
  py::dict info() {
    coamd_stream_info i{};
    i.struct_size = sizeof(i);
    check(coamd_stream_info_get(s_, &i));
    py::dict d;
    d["receiving"] = bool(i.receiving);
    d["frames_received"] = i.frames_received;
    d["total_frames"] = i.total_frames;
    d["client_ttff_ms"] = i.client_ttff_ms;
    d["client_total_ms"] = i.client_total_ms;
    d["server_ttff_ms"] = i.server_ttff_ms;
    d["server_total_ms"] = i.server_total_ms;
    d["server_queue_ms"] = i.server_queue_ms;
    d["guidance_applied"] = bool(i.guidance_applied);
    d["has_summary"] = bool(i.has_summary);
    d["seed"] = i.seed;
    d["cleanup_applied"] = bool(i.cleanup_applied);
    d["temperature"] = i.temperature;
    d["iterations"] = i.iterations;
    d["ode_steps"] = i.ode_steps;
    d["cfg_scale"] = i.cfg_scale;
    d["guidance_scale"] = i.guidance_scale;
    d["max_batch"] = i.max_batch;
    d["skeleton_applied"] = bool(i.skeleton_applied);
    d["root_motion"] = i.root_motion;
    d["out_of_vocabulary"] = bool(i.out_of_vocabulary);
    d["out_of_vocabulary_score"] = i.out_of_vocabulary_score;
    return d;
  }
  // How the server understood the text; None until the summary has arrived.
  py::object interpretation() {
    auto i = std::make_unique<coamd_interpretation>();
    i->struct_size = sizeof(coamd_interpretation);
    const int rc = coamd_stream_interpretation(s_, i.get());
    if (rc == COAMD_ERR_NOT_FOUND) return py::none();
    check(rc);
    return interpretation_dict(*i);
  }
  // (info dict incl. root_velocity and heading, positions, local, world) at a motion time.
  py::tuple sample_at(double m) {
    return sample_tuple([&](coamd_frame_info* info, float* p, float* l, float* w) {
      return coamd_stream_sample_at(s_, m, info, p, 63, l, 84, w, 84);
    });
  }
  // The whole failure message, however long.
  std::string error() {
    return copy_text([&](char* buf, int32_t buf_len, int32_t* len) {
      return coamd_stream_error_copy(s_, buf, buf_len, len);
    });
  }
  std::unique_ptr<Reader> reader(const std::string& subject, float buffering_delay_s) {
    coamd_reader* r = nullptr;
    check(coamd_reader_create(s_, subject.c_str(), buffering_delay_s, &r));
    return std::make_unique<Reader>(r);
  }
  bool wait(float timeout_s) {
    return waited(without_gil([&] { return coamd_stream_wait(s_, timeout_s); }));
  }
  void cancel() { check(coamd_stream_cancel(s_)); }
  void restart_playback() { check(coamd_stream_restart_playback(s_)); }

 private:
  coamd_stream* s_;
};

// A Session RPC: an endless motion steered by instructions (coamd_session_*).
class Session {
 public:
  explicit Session(coamd_session* s) : s_(s) {}
  ~Session() { coamd_session_destroy(s_); }
  Session(const Session&) = delete;
  uint32_t instruct(const std::string& text) {
    uint32_t n = 0;
    check(coamd_session_instruct(s_, text.c_str(), &n));
    return n;
  }
  void close() { check(coamd_session_close(s_)); }
  void cancel() { check(coamd_session_cancel(s_)); }
  py::tuple sample(double t) {
    return sample_tuple([&](coamd_frame_info* info, float* p, float* l, float* w) {
      return coamd_session_sample(s_, t, info, p, 63, l, 84, w, 84);
    });
  }
  // Every event waiting: dicts with kind ("OPENED", "INSTRUCTION", "CLOSED", as the Python client), instruction,
  // first_frame, latency_ms and interpretation (a dict or None).
  py::list events() {
    py::list out;
    auto interp = std::make_unique<coamd_interpretation>();
    for (;;) {
      coamd_session_event e;
      e.struct_size = sizeof(e);
      interp->struct_size = sizeof(coamd_interpretation);
      const int rc = coamd_session_next_event(s_, &e, interp.get());
      if (rc == COAMD_ERR_NOT_FOUND) break;
      check(rc);
      py::dict d;
      static const char* const kinds[] = {"UNSPECIFIED", "OPENED", "INSTRUCTION", "CLOSED"};
      d["kind"] = e.kind >= 0 && e.kind <= 3 ? kinds[e.kind] : "UNKNOWN";
      d["instruction"] = e.instruction;
      d["first_frame"] = e.first_frame;
      d["latency_ms"] = e.latency_ms;
      d["interpretation"] = e.has_interpretation ? py::object(interpretation_dict(*interp)) : py::none();
      out.append(d);
    }
    return out;
  }
  bool wait(float timeout_s) {
    return waited(without_gil([&] { return coamd_session_wait(s_, timeout_s); }));
  }
  std::string error() {
    return copy_text([&](char* buf, int32_t buf_len, int32_t* len) {
      return coamd_session_error_copy(s_, buf, buf_len, len);
    });
  }

 private:
  coamd_session* s_;
};

class Client {
 public:
  Client(const std::string& target, bool tls, const std::string& root_certs, const std::string& token,
         float connect_timeout_s) {
    coamd_client_options o;
    coamd_client_options_defaults(&o);
    o.use_tls = tls ? 1 : 0;
    o.connect_timeout_s = connect_timeout_s;
    check(without_gil([&] {
      return coamd_client_create(target.c_str(), &o, root_certs.empty() ? nullptr : root_certs.c_str(),
                                 token.empty() ? nullptr : token.c_str(), &c_);
    }));
  }
  ~Client() { coamd_client_destroy(c_); }
  Client(const Client&) = delete;

  F32 skeleton(int coords) {
    F32 rest({21, 3});
    check(coamd_client_skeleton(c_, coords, rest.mutable_data(), nullptr));
    return rest;
  }
  // (rest offsets (21,3), reference local rotations (21,4), reference positions (21,3))
  py::tuple reference_pose(int coords) {
    F32 rest({21, 3}), loc({21, 4}), pos({21, 3});
    check(coamd_client_reference_pose(c_, coords, rest.mutable_data(), 63, loc.mutable_data(), 84,
                                      pos.mutable_data(), 63));
    return py::make_tuple(rest, loc, pos);
  }

  std::unique_ptr<Stream> generate(const std::string& text, float duration_s, uint64_t seed, int guidance,
                                   float guidance_scale, float cfg_scale, uint32_t iterations, uint32_t ode_steps,
                                   int order, int coordinates, bool server_rotations, float buffering_delay_s,
                                   float deadline_s, uint32_t capacity_frames, int cleanup, float temperature,
                                   int text_conditioning, int skeleton, int root_motion) {
    coamd_request r;
    coamd_request_defaults(&r);
    set_shared(r, seed, guidance, guidance_scale, cfg_scale, iterations, ode_steps, coordinates, server_rotations,
               cleanup, temperature, text_conditioning, root_motion, buffering_delay_s);
    r.duration_s = duration_s;
    r.order = order;
    r.deadline_s = deadline_s;
    r.capacity_frames = capacity_frames;
    r.skeleton = skeleton;
    coamd_stream* s = nullptr;
    check(coamd_stream_start(c_, text.c_str(), &r, &s));
    return std::make_unique<Stream>(s);
  }

  std::unique_ptr<Session> session(const std::string& text, uint64_t seed, int guidance, float guidance_scale,
                                   float cfg_scale, uint32_t iterations, uint32_t ode_steps, int coordinates,
                                   bool server_rotations, int cleanup, float temperature, int text_conditioning,
                                   float lookahead_s, int root_motion, float buffering_delay_s,
                                   uint32_t history_frames) {
    coamd_session_options o;
    check(coamd_session_options_init(&o, sizeof(o)));
    set_shared(o, seed, guidance, guidance_scale, cfg_scale, iterations, ode_steps, coordinates, server_rotations,
               cleanup, temperature, text_conditioning, root_motion, buffering_delay_s);
    o.lookahead_s = lookahead_s;
    o.history_frames = history_frames;
    coamd_session* s = nullptr;
    check(coamd_session_open(c_, &o, text.c_str(), &s));
    return std::make_unique<Session>(s);
  }

  // {"actions": [dict], "styles": [dict], "min_duration_s", "max_duration_s", "fps", "max_text_chars",
  //  "rare_below_clips"}; each action/style: label, description, training_clips, side, recorded_with
  //  ({style: clips} for an action, {action: clips} for a style; coamd_client_pair_clips).
  py::dict capabilities() {
    coamd_capabilities caps;
    caps.struct_size = sizeof(caps);
    // the first call fetches over the network
    check(without_gil([&] { return coamd_client_capabilities(c_, &caps, nullptr, 0, nullptr, 0); }));
    std::vector<coamd_capability> actions(static_cast<size_t>(caps.num_actions)), styles(static_cast<size_t>(caps.num_styles));
    for (auto& a : actions) a.struct_size = sizeof(a);
    for (auto& a : styles) a.struct_size = sizeof(a);
    check(coamd_client_capabilities(c_, &caps, actions.data(), caps.num_actions, styles.data(), caps.num_styles));
    int32_t num_pairs = 0;
    check(coamd_client_pair_clips(c_, nullptr, 0, &num_pairs));
    std::vector<uint32_t> pairs(static_cast<size_t>(num_pairs));
    check(coamd_client_pair_clips(c_, pairs.data(), num_pairs, &num_pairs));
    const size_t ns = styles.size();
    // row-major pairs[a * ns + s]; for styles (by_action false) read down a column
    auto list = [&](const std::vector<coamd_capability>& v, const std::vector<coamd_capability>& other, bool by_action) {
      py::list out;
      for (size_t i = 0; i < v.size(); ++i) {
        const auto& a = v[i];
        py::dict d;
        d["label"] = std::string(a.label);
        d["description"] = std::string(a.description);
        d["training_clips"] = a.training_clips;
        d["side"] = std::string(a.side);
        py::dict rec;
        for (size_t j = 0; j < other.size(); ++j) {
          const uint32_t n = by_action ? pairs[i * ns + j] : pairs[j * ns + i];
          if (n > 0) rec[py::str(std::string(other[j].label))] = n;
        }
        d["recorded_with"] = rec;
        out.append(d);
      }
      return out;
    };
    py::dict d;
    d["actions"] = list(actions, styles, true);
    d["styles"] = list(styles, actions, false);
    d["min_duration_s"] = caps.min_duration_s;
    d["max_duration_s"] = caps.max_duration_s;
    d["fps"] = caps.fps;
    d["max_text_chars"] = caps.max_text_chars;
    d["rare_below_clips"] = caps.rare_below_clips;
    return d;
  }

 private:
  coamd_client* c_ = nullptr;
};

}  // namespace

PYBIND11_MODULE(coamd_native, m) {
  m.doc() = "CoAMD native engine client (the C ABI of libcoamd_client) for Python tests and tools. "
            "Positions (21, 3) and quaternions (21, 4) as (x, y, z, w) in the requested coordinates.";
  m.attr("ABI_VERSION") = coamd_abi_version();
  m.attr("VERSION") = std::string(coamd_version());
  m.attr("BUILD_INFO") = std::string(coamd_build_info());
  m.attr("FPS") = COAMD_FPS;
  m.attr("STATE_BUFFERING") = int(COAMD_STATE_BUFFERING);
  m.attr("STATE_PLAYING") = int(COAMD_STATE_PLAYING);
  m.attr("STATE_FINISHED") = int(COAMD_STATE_FINISHED);
  m.attr("STATE_ERROR") = int(COAMD_STATE_ERROR);
  m.attr("STATE_CANCELLED") = int(COAMD_STATE_CANCELLED);
  m.attr("COORDS_RIGHT_HANDED_Y_UP") = int(COAMD_COORDS_RIGHT_HANDED_Y_UP);
  m.attr("COORDS_UNITY") = int(COAMD_COORDS_UNITY);
  m.attr("COORDS_UNREAL") = int(COAMD_COORDS_UNREAL);
  m.attr("CLEANUP_SERVER_DEFAULT") = int(COAMD_CLEANUP_SERVER_DEFAULT);
  m.attr("CLEANUP_ON") = int(COAMD_CLEANUP_ON);
  m.attr("CLEANUP_OFF") = int(COAMD_CLEANUP_OFF);
  m.attr("GUIDANCE_SERVER_DEFAULT") = int(COAMD_GUIDANCE_SERVER_DEFAULT);
  m.attr("GUIDANCE_ON") = int(COAMD_GUIDANCE_ON);
  m.attr("GUIDANCE_OFF") = int(COAMD_GUIDANCE_OFF);
  m.attr("ORDER_SERVER_DEFAULT") = int(COAMD_ORDER_SERVER_DEFAULT);
  m.attr("ORDER_RANDOM") = int(COAMD_ORDER_RANDOM);
  m.attr("ORDER_LEFT_TO_RIGHT") = int(COAMD_ORDER_LEFT_TO_RIGHT);
  m.attr("TEXT_CONDITIONING_SERVER_DEFAULT") = int(COAMD_TEXT_CONDITIONING_SERVER_DEFAULT);
  m.attr("TEXT_CONDITIONING_UNDERSTOOD") = int(COAMD_TEXT_CONDITIONING_UNDERSTOOD);
  m.attr("TEXT_CONDITIONING_RAW") = int(COAMD_TEXT_CONDITIONING_RAW);
  m.attr("SKELETON_SERVER_DEFAULT") = int(COAMD_SKELETON_SERVER_DEFAULT);
  m.attr("SKELETON_FK") = int(COAMD_SKELETON_FK);
  m.attr("SKELETON_RAW") = int(COAMD_SKELETON_RAW);
  m.attr("ROOT_MOTION_SERVER_DEFAULT") = int(COAMD_ROOT_MOTION_SERVER_DEFAULT);
  m.attr("ROOT_MOTION_WORLD") = int(COAMD_ROOT_MOTION_WORLD);
  m.attr("ROOT_MOTION_IN_PLACE") = int(COAMD_ROOT_MOTION_IN_PLACE);

  py::list names, unity, unreal, parents;
  for (int j = 0; j < COAMD_NUM_JOINTS; ++j) {
    names.append(coamd_joint_name(j));
    unity.append(coamd_unity_humanoid_bone(j));
    unreal.append(coamd_unreal_bone(j));
    parents.append(coamd_joint_parent(j));
  }
  m.attr("JOINT_NAMES") = py::tuple(names);
  m.attr("UNITY_HUMANOID_BONES") = py::tuple(unity);
  m.attr("UNREAL_BONES") = py::tuple(unreal);
  m.attr("PARENTS") = py::tuple(parents);

  py::class_<Reader>(m, "Reader", "An independent playhead over a stream's frames (its own clock and state).")
      .def_property_readonly("subject_name", &Reader::subject_name)
      .def("sample", &Reader::sample, py::arg("engine_time_s"),
           "Playback at engine time (s): (info, positions (21,3), local (21,4), world (21,4)).")
      .def("restart", &Reader::restart);

  py::class_<Stream>(m, "Stream", "A Generate stream received on a background thread into a jitter buffer.")
      .def("reader", &Stream::reader, py::arg("subject_name") = "", py::arg("buffering_delay_s") = -1.f,
           "A new independent playhead over this stream's frames.")
      .def("sample", &Stream::sample, py::arg("engine_time_s"),
           "Playback at engine time (s): (info, positions (21,3), local (21,4), world (21,4)).")
      .def("sample_info", &Stream::sample_info, py::arg("engine_time_s"), "Playback state only (no pose copy).")
      .def("sample_motion_time", &Stream::sample_motion_time, py::arg("motion_time_s"),
           "Interpolated pose at a motion time (s from frame 0); IndexError if not received yet.")
      .def("frame", &Stream::frame, py::arg("index"), "Frame as received: (positions (21,3), local (21,4)).")
      .def("info", &Stream::info, "Progress, client-measured latencies and the server summary.")
      .def("error", &Stream::error, "The failure message ('' when none).")
      .def("interpretation", &Stream::interpretation,
           "How the server understood the text (content/style labels with scores, side, out_of_vocabulary, "
           "note, conditioned_text); None until the summary has arrived.")
      .def("sample_at", &Stream::sample_at, py::arg("motion_time_s"),
           "Pose at a motion time (s): (info incl. root_velocity and heading, positions, local, world).")
      .def("wait", &Stream::wait, py::arg("timeout_s") = 0.f, "Block until the stream ended; False on time-out.")
      .def("cancel", &Stream::cancel)
      .def("restart_playback", &Stream::restart_playback);

  py::class_<Session>(m, "Session", "An endless motion whose instruction changes mid-stream (Session RPC).")
      .def("instruct", &Session::instruct, py::arg("text"), "Send a new instruction; returns its number (1, 2, ...).")
      .def("close", &Session::close, "Ask the server to end the session (CLOSED event, then the stream completes).")
      .def("cancel", &Session::cancel)
      .def("sample", &Session::sample, py::arg("engine_time_s"),
           "Playback at engine time (s): (info, positions (21,3), local (21,4), world (21,4)).")
      .def("events", &Session::events, "Every event received since the last call.")
      .def("wait", &Session::wait, py::arg("timeout_s") = 0.f, "Block until the session ended; False on time-out.")
      .def("error", &Session::error, "The failure message ('' when none).");

  py::class_<Client>(m, "Client", "A connection to `coamd serve` (fetches the skeleton on connect).")
      .def(py::init<const std::string&, bool, const std::string&, const std::string&, float>(), py::arg("target"),
           py::arg("tls") = false, py::arg("root_certs") = "", py::arg("token") = "",
           py::arg("connect_timeout_s") = 5.f)
      .def("skeleton", &Client::skeleton, py::arg("coords") = 0, "Rest offsets (21, 3), parent-relative.")
      .def("reference_pose", &Client::reference_pose, py::arg("coords") = 0,
           "(rest offsets (21,3), upright reference pose: local rotations (21,4), positions (21,3)).")
      .def("generate", &Client::generate, py::arg("text"), py::arg("duration_s") = 4.f, py::arg("seed") = 0,
           py::arg("guidance") = 0, py::arg("guidance_scale") = 0.f, py::arg("cfg_scale") = 0.f,
           py::arg("iterations") = 0, py::arg("ode_steps") = 0, py::arg("order") = 0, py::arg("coordinates") = 0,
           py::arg("server_rotations") = false, py::arg("buffering_delay_s") = 0.2f, py::arg("deadline_s") = 0.f,
           py::arg("capacity_frames") = 0, py::arg("cleanup") = 0, py::arg("temperature") = 0.f,
           py::arg("text_conditioning") = 0, py::arg("skeleton") = 0, py::arg("root_motion") = 0,
           "Start a Generate stream; returns at once.")
      .def("session", &Client::session, py::arg("text"), py::arg("seed") = 0, py::arg("guidance") = 0,
           py::arg("guidance_scale") = 0.f, py::arg("cfg_scale") = 0.f, py::arg("iterations") = 0,
           py::arg("ode_steps") = 0, py::arg("coordinates") = 0, py::arg("server_rotations") = false,
           py::arg("cleanup") = 0, py::arg("temperature") = 0.f, py::arg("text_conditioning") = 0,
           py::arg("lookahead_s") = 0.f, py::arg("root_motion") = 0, py::arg("buffering_delay_s") = 0.2f,
           py::arg("history_frames") = 0, "Open a Session (endless motion steered by instruct()); returns at once.")
      .def("capabilities", &Client::capabilities,
           "Actions and styles (label, description, training_clips, side, recorded_with) and the duration range.");

  m.def("convert_positions", [](F32 p, int from, int to) {
    if (p.ndim() < 1 || p.shape(p.ndim() - 1) != 3) throw py::value_error("positions must end in an axis of 3");
    F32 out(std::vector<py::ssize_t>(p.shape(), p.shape() + p.ndim()));
    check(coamd_convert_positions(p.data(), static_cast<int32_t>(p.size() / 3), from, to, out.mutable_data()));
    return out;
  }, py::arg("positions"), py::arg("from_coords"), py::arg("to_coords"));
  m.def("convert_rotations", [](F32 q, int from, int to) {
    if (q.ndim() < 1 || q.shape(q.ndim() - 1) != 4) throw py::value_error("rotations must end in an axis of 4");
    F32 out(std::vector<py::ssize_t>(q.shape(), q.shape() + q.ndim()));
    check(coamd_convert_rotations(q.data(), static_cast<int32_t>(q.size() / 4), from, to, out.mutable_data()));
    return out;
  }, py::arg("rotations"), py::arg("from_coords"), py::arg("to_coords"));
  m.def("solve_rotations", [](F32 positions, F32 rest) {
    F32 loc({21, 4}), wor({21, 4});
    check(coamd_solve_rotations(need(positions, 63, "positions"), need(rest, 63, "rest_offsets"),
                                loc.mutable_data(), wor.mutable_data()));
    return py::make_tuple(loc, wor);
  }, py::arg("positions"), py::arg("rest_offsets"), "(21,3) positions -> (local (21,4), world (21,4)).");
  m.def("forward_kinematics", [](F32 root, F32 local, F32 rest) {
    F32 pos({21, 3});
    check(coamd_forward_kinematics(need(root, 3, "root"), need(local, 84, "local_rotations"),
                                   need(rest, 63, "rest_offsets"), pos.mutable_data()));
    return pos;
  }, py::arg("root"), py::arg("local_rotations"), py::arg("rest_offsets"));
}
