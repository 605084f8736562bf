/*
 * CoAMD native client: the stable C ABI (Unity P/Invoke, Unreal, any FFI).
 *
 * Streams motions from a `coamd serve` gRPC server (proto/coamd/v1/motion.proto) and plays them
 * back at engine time. A background thread receives frames into a pre-allocated jitter buffer;
 * coamd_stream_sample() on the engine thread never allocates, never blocks and takes no lock.
 *
 * Skeleton: 21 joints in the order of coamd_joint_name() (DESIGN.md section 4), 20 fps.
 * Arrays are flat float32: positions 21 x 3 (x, y, z), rotations 21 x 4 quaternions (x, y, z, w).
 * Units and axes follow the coordinate system asked for (coamd_coords):
 *   COAMD_COORDS_RIGHT_HANDED_Y_UP  metres, right-handed, +Y up, the character starts facing +Z
 *                                   with its left side at +X (the project frame);
 *   COAMD_COORDS_UNITY              metres, Unity's left-handed Y-up frame (x negated);
 *   COAMD_COORDS_UNREAL             centimetres, Unreal's left-handed Z-up frame
 *                                   (X forward = project +Z, Y right = project -X, Z up = project +Y).
 *
 * Errors: every function returning int returns a coamd_status; on failure the calling thread's
 * coamd_last_error() holds a message naming the problem. Handles are opaque; every *_create /
 * *_start has its *_destroy. All strings are UTF-8, NUL-terminated.
 *
 * Threading: a client may start streams from any thread. coamd_stream_sample() for one stream
 * must be called from one thread at a time (the engine thread); coamd_stream_cancel() may be
 * called from any thread at any time.
 */
#ifndef COAMD_CLIENT_H
#define COAMD_CLIENT_H

#include <stdint.h>

#if defined(_WIN32)
#  if defined(COAMD_BUILDING_LIBRARY)
#    define COAMD_API __declspec(dllexport)
#  else
#    define COAMD_API __declspec(dllimport)
#  endif
#else
#  define COAMD_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define COAMD_ABI_VERSION 1
#define COAMD_NUM_JOINTS 21
#define COAMD_FPS 20.0f

typedef enum coamd_status {
  COAMD_OK = 0,
  COAMD_ERR_INVALID_ARGUMENT = 1, /* a NULL handle, a bad size, a value out of range */
  COAMD_ERR_CONNECT = 2,          /* the server could not be reached in time */
  COAMD_ERR_RPC = 3,              /* the server answered with an error status */
  COAMD_ERR_STATE = 4,            /* the call does not fit the handle's state */
  COAMD_ERR_NOT_FOUND = 5,        /* e.g. a frame index not received (yet) */
  COAMD_ERR_INTERNAL = 6
} coamd_status;

typedef enum coamd_state {
  COAMD_STATE_BUFFERING = 0, /* waiting until buffering_delay_s of motion is ahead (or the end) */
  COAMD_STATE_PLAYING = 1,   /* playing received frames */
  COAMD_STATE_FINISHED = 2,  /* the stream ended and playback passed its last frame (held) */
  COAMD_STATE_ERROR = 3,     /* the stream failed; coamd_stream_error() says why */
  COAMD_STATE_CANCELLED = 4  /* coamd_stream_cancel() was called */
} coamd_state;

typedef enum coamd_coords {
  COAMD_COORDS_RIGHT_HANDED_Y_UP = 0,
  COAMD_COORDS_UNITY = 1,
  COAMD_COORDS_UNREAL = 2
} coamd_coords;

typedef enum coamd_guidance {
  COAMD_GUIDANCE_SERVER_DEFAULT = 0,
  COAMD_GUIDANCE_ON = 1, /* action-recognizer guidance: better text match, slower */
  COAMD_GUIDANCE_OFF = 2 /* faster */
} coamd_guidance;

typedef enum coamd_order {
  COAMD_ORDER_SERVER_DEFAULT = 0,
  COAMD_ORDER_RANDOM = 1,       /* frames arrive after the last iteration */
  COAMD_ORDER_LEFT_TO_RIGHT = 2 /* frames stream as tokens finish */
} coamd_order;

/* Connection settings. Set struct_size = sizeof(coamd_client_options). */
typedef struct coamd_client_options {
  int32_t struct_size;
  int32_t use_tls;            /* 0 = plaintext (loopback), 1 = TLS */
  float connect_timeout_s;    /* how long coamd_client_create waits for the server; <= 0: 5 s */
  int32_t reserved;
} coamd_client_options;

/* One generation request plus its playback settings. Set struct_size = sizeof(coamd_request);
 * coamd_request_defaults() fills the defaults. */
typedef struct coamd_request {
  int32_t struct_size;
  float duration_s;          /* 0.4 .. 12 seconds */
  uint64_t seed;
  int32_t guidance;          /* coamd_guidance */
  float guidance_scale;      /* 0 = server default */
  float cfg_scale;           /* classifier-free guidance scale; 0 = server default */
  uint32_t iterations;       /* masked-AR iterations; 0 = server default */
  uint32_t ode_steps;        /* ODE steps per iteration; 0 = server default */
  int32_t order;             /* coamd_order */
  int32_t coordinates;       /* coamd_coords of every array this stream returns */
  int32_t server_rotations;  /* 1: ask the server for local rotations; 0: solve them here from
                                the positions and the skeleton's rest offsets */
  float buffering_delay_s;   /* motion buffered ahead before playback starts or resumes; default 0.2 */
  float deadline_s;          /* gRPC deadline of the whole stream; <= 0: none */
  uint32_t capacity_frames;  /* jitter-buffer slots; 0 = from duration_s (+ margin) */
} coamd_request;

/* What coamd_stream_sample() reports besides the pose. */
typedef struct coamd_sample_info {
  int32_t state;             /* coamd_state */
  int32_t frame;             /* lower frame index of the interpolation, -1 when none yet */
  float alpha;               /* blend weight towards frame + 1, in [0, 1) */
  float motion_time_s;       /* time in the motion that was sampled (seconds from frame 0) */
  uint32_t frames_available; /* frames received so far */
  uint32_t total_frames;     /* frames in the whole motion, 0 until the server's summary */
  int32_t rebuffer_count;    /* how often playback ran dry and went back to buffering */
  int32_t reserved;
} coamd_sample_info;

/* Stream progress and the server's summary. */
typedef struct coamd_stream_info {
  int32_t struct_size;
  int32_t receiving;         /* 1 while the background thread still reads the stream */
  uint32_t frames_received;
  uint32_t total_frames;     /* from the summary; 0 until it arrives */
  float client_ttff_ms;      /* request sent -> first frame received, measured here */
  float client_total_ms;     /* request sent -> stream ended, measured here; 0 while receiving */
  float server_ttff_ms;      /* the summary's time_to_first_frame_ms */
  float server_total_ms;
  float server_queue_ms;
  int32_t guidance_applied;  /* from the summary */
  int32_t has_summary;
  uint64_t seed;             /* the seed the server used */
} coamd_stream_info;

typedef struct coamd_client coamd_client;
typedef struct coamd_stream coamd_stream;

/* ---- library ---- */
COAMD_API int32_t coamd_abi_version(void);
/* The calling thread's last error message ("" when none); valid until its next failing call. */
COAMD_API const char* coamd_last_error(void);
/* Name of joint i (0..20), NULL if out of range. */
COAMD_API const char* coamd_joint_name(int32_t joint);
/* Parent of joint i (-1 for the root, -2 if out of range). */
COAMD_API int32_t coamd_joint_parent(int32_t joint);
/* Unity HumanBodyBones name / Unreal mannequin bone name for joint i (NULL if out of range). */
COAMD_API const char* coamd_unity_humanoid_bone(int32_t joint);
COAMD_API const char* coamd_unreal_bone(int32_t joint);

/* ---- client ---- */
COAMD_API void coamd_client_options_defaults(coamd_client_options* options);
/* Connects to target ("host:port"). root_certs_pem: PEM roots for TLS (NULL = system roots);
 * bearer_token: sent as "authorization: Bearer <token>" (NULL or "" = none). Fetches the skeleton;
 * fails with COAMD_ERR_CONNECT when the server does not answer within connect_timeout_s. */
COAMD_API int coamd_client_create(const char* target, const coamd_client_options* options,
                                  const char* root_certs_pem, const char* bearer_token,
                                  coamd_client** out_client);
COAMD_API void coamd_client_destroy(coamd_client* client);
/* The skeleton's rest offsets (21 x 3, parent-relative) in `coords` units; parents (21) may be NULL. */
COAMD_API int coamd_client_skeleton(coamd_client* client, int32_t coords, float* rest_offsets63,
                                    int32_t* parents21);

/* ---- streams ---- */
COAMD_API void coamd_request_defaults(coamd_request* request);
/* Starts a Generate stream for `text`; returns at once, frames arrive on a background thread. */
COAMD_API int coamd_stream_start(coamd_client* client, const char* text, const coamd_request* request,
                                 coamd_stream** out_stream);
/* Cancels the RPC (idempotent, any thread). Playback keeps what arrived and reports CANCELLED. */
COAMD_API int coamd_stream_cancel(coamd_stream* stream);
/* Cancels if still running, joins the receiver thread and frees the stream. */
COAMD_API void coamd_stream_destroy(coamd_stream* stream);
/* Engine-thread playback at engine time t (seconds, any origin, normally non-decreasing).
 * Writes the interpolated pose (positions lerped, rotations slerped) into the non-NULL outputs:
 * positions63, local_rotations84 (relative to the parent joint), world_rotations84 (relative to
 * the rest pose, in the stream's frame). Outputs are left untouched while no frame has arrived. */
COAMD_API int coamd_stream_sample(coamd_stream* stream, double engine_time_s, coamd_sample_info* info,
                                  float* positions63, float* local_rotations84, float* world_rotations84);
/* The same interpolation at a time in the motion (seconds from frame 0), without the playback
 * clock: for tools and tests. COAMD_ERR_NOT_FOUND if that time has not been received. */
COAMD_API int coamd_stream_sample_motion_time(coamd_stream* stream, double motion_time_s,
                                              float* positions63, float* local_rotations84,
                                              float* world_rotations84);
/* Frame `index` exactly as received (converted to the stream's coordinates). */
COAMD_API int coamd_stream_frame(coamd_stream* stream, uint32_t index, float* positions63,
                                 float* local_rotations84);
COAMD_API int coamd_stream_info_get(coamd_stream* stream, coamd_stream_info* info);
/* Copies the stream's error message (empty when none) into buf (NUL-terminated, truncated). */
COAMD_API int coamd_stream_error(coamd_stream* stream, char* buf, int32_t buf_len);
/* Blocks until the stream has ended (not for the engine thread). timeout_s <= 0: wait forever.
 * COAMD_ERR_STATE on time-out. */
COAMD_API int coamd_stream_wait(coamd_stream* stream, float timeout_s);
/* Moves playback to BUFFERING from the start (replay) without touching the received frames. */
COAMD_API int coamd_stream_restart_playback(coamd_stream* stream);

/* ---- conversions (pure functions) ---- */
/* count points (x, y, z) from one coamd_coords to another (units included). in == out allowed. */
COAMD_API int coamd_convert_positions(const float* in, int32_t count, int32_t from_coords,
                                      int32_t to_coords, float* out);
/* count unit quaternions (x, y, z, w) from one frame to another. in == out allowed. */
COAMD_API int coamd_convert_rotations(const float* in, int32_t count, int32_t from_coords,
                                      int32_t to_coords, float* out);
/* Joint positions (21 x 3) -> per-joint local rotations (21 x 4) and world rotations (21 x 4)
 * that turn the rest pose (rest_offsets63, parent-relative, same frame as positions) into this
 * pose: forward kinematics with these rotations points every bone like the positions do.
 * world_rotations84 may be NULL. */
COAMD_API int coamd_solve_rotations(const float* positions63, const float* rest_offsets63,
                                    float* local_rotations84, float* world_rotations84);
/* Forward kinematics: root position (3) + local rotations (21 x 4) + rest offsets -> positions. */
COAMD_API int coamd_forward_kinematics(const float* root_position3, const float* local_rotations84,
                                       const float* rest_offsets63, float* positions63);

#ifdef __cplusplus
}
#endif
#endif /* COAMD_CLIENT_H */
