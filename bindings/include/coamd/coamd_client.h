/*
 * CoAMD native client: the stable C ABI (Unity P/Invoke, Unreal, any FFI).
 *
 * Streams motions from a `coamd serve` gRPC server (proto/coamd/v1/motion.proto) and plays them
 * back at engine time. A background thread receives frames into a pre-allocated jitter buffer;
 * sampling on an engine thread never allocates, never blocks and takes no lock.
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
 * last error holds a message naming the problem (coamd_last_error(), or coamd_last_error_copy()
 * for a copy of any length). Handles are opaque; every *_create / *_start has its *_destroy.
 * All strings are UTF-8, NUL-terminated.
 *
 * Versioning (the model of onnxruntime_c_api.h): functions are only ever added; a struct only
 * grows at its end, and its struct_size field says which version the caller was built against.
 * The library accepts every struct_size from the struct's first released size up to its current
 * sizeof: an input struct shorter than the current one takes defaults for the fields it lacks,
 * an output struct is written only up to its struct_size. A struct_size larger than this
 * library knows (a caller built against a newer header) is refused with
 * COAMD_ERR_INVALID_ARGUMENT. Array outputs of the functions added in version 3 take their
 * length in floats and refuse a shorter array (COAMD_ERR_INVALID_ARGUMENT) instead of writing
 * past it; the version-1 functions keep their fixed lengths (63 and 84 floats).
 *
 * Threading: a client may start streams from any thread. Every stream has a built-in playhead
 * (coamd_stream_sample) for one thread at a time; any number of readers (coamd_reader_create),
 * each with its own playhead, read the same frames lock-free from other threads, e.g. the game
 * thread and an animation worker. coamd_stream_cancel() may be called from any thread at any
 * time. The log callback is called from library and gRPC threads.
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

/* 1: first release. 2: coamd_request gained cleanup and temperature.
 * 3: struct_size ranges (older callers accepted), coamd_version, log callback, full-length error
 *    copies, readers (a playhead each), coamd_frame_info, sized array outputs, the upright
 *    reference pose (engine rigs, Live Link static data), coamd_stream_info summary fields.
 * 4: capabilities (coamd_client_capabilities), the server's interpretation of a text
 *    (coamd_stream_interpretation, coamd_stream_info's tail), coamd_request's text_conditioning,
 *    skeleton and root_motion, per-frame root motion in coamd_frame_info (root_velocity, heading),
 *    sessions (coamd_session_*: an endless motion steered by new instructions).
 * 5: which styles each action was recorded in (coamd_client_pair_clips). */
#define COAMD_ABI_VERSION 5
#define COAMD_VERSION_MAJOR 0
#define COAMD_VERSION_MINOR 4
#define COAMD_VERSION_PATCH 0
#define COAMD_VERSION_STRING "0.4.0"
#define COAMD_NUM_JOINTS 21
#define COAMD_FPS 20.0f

typedef enum coamd_status {
  COAMD_OK = 0,
  COAMD_ERR_INVALID_ARGUMENT = 1, /* a NULL handle, a bad size, a value out of range */
  COAMD_ERR_CONNECT = 2,          /* the server could not be reached in time */
  COAMD_ERR_RPC = 3,              /* the server answered with an error status */
  COAMD_ERR_STATE = 4,            /* the call does not fit the handle's state */
  COAMD_ERR_NOT_FOUND = 5,        /* e.g. a frame index not received (yet) */
  COAMD_ERR_INTERNAL = 6,
  COAMD_ERR_BUFFER_TOO_SMALL = 7  /* (version 3) a text did not fit: the *_copy functions */
} coamd_status;

/* Severity of a log message (version 3). */
typedef enum coamd_log_level {
  COAMD_LOG_DEBUG = 0,
  COAMD_LOG_INFO = 1,
  COAMD_LOG_WARNING = 2,
  COAMD_LOG_ERROR = 3,
  COAMD_LOG_OFF = 4  /* as a minimum level: nothing is logged */
} coamd_log_level;

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

typedef enum coamd_cleanup {
  COAMD_CLEANUP_SERVER_DEFAULT = 0, /* on */
  COAMD_CLEANUP_ON = 1,  /* foot-contact cleanup on the server: smoothing, root motion from the
                            planted feet, foot IK (feet stay planted while they touch the floor) */
  COAMD_CLEANUP_OFF = 2  /* the model's raw frames, e.g. when the engine runs its own foot IK */
} coamd_cleanup;

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

/* What the generator is conditioned on (version 4); the server reports its understanding either way. */
typedef enum coamd_text_conditioning {
  COAMD_TEXT_CONDITIONING_SERVER_DEFAULT = 0, /* understood */
  COAMD_TEXT_CONDITIONING_UNDERSTOOD = 1,     /* the understood action and style in the training
                                                 captions' phrasing, then the text's own words */
  COAMD_TEXT_CONDITIONING_RAW = 2             /* the text as given (research) */
} coamd_text_conditioning;

/* What the frames are (version 4). */
typedef enum coamd_skeleton_mode {
  COAMD_SKELETON_SERVER_DEFAULT = 0, /* FK */
  COAMD_SKELETON_FK = 1,  /* forward kinematics on the server skeleton's rest offsets: bone lengths exact */
  COAMD_SKELETON_RAW = 2  /* the model's decoded coordinates (research; bone lengths drift) */
} coamd_skeleton_mode;

/* Where the character's travel goes (version 4). */
typedef enum coamd_root_motion {
  COAMD_ROOT_MOTION_SERVER_DEFAULT = 0, /* world */
  COAMD_ROOT_MOTION_WORLD = 1,    /* the hips travel in the positions */
  COAMD_ROOT_MOTION_IN_PLACE = 2  /* hips x/z removed from every frame (heading kept in the pose); the
                                     travel comes as coamd_frame_info.root_velocity and .heading */
} coamd_root_motion;

/* Connection settings. coamd_client_options_defaults() fills struct_size (16 in every version). */
typedef struct coamd_client_options {
  int32_t struct_size;
  int32_t use_tls;            /* 0 = plaintext (loopback), 1 = TLS */
  float connect_timeout_s;    /* how long coamd_client_create waits for the server; <= 0: 5 s */
  int32_t reserved;
} coamd_client_options;

/* One generation request plus its playback settings; coamd_request_init(&r, sizeof r) fills the
 * defaults and struct_size. Sizes accepted: 64 (version 1: up to capacity_frames plus 4 bytes of
 * padding, which version 2 turned into `cleanup`; temperature then takes the server default),
 * 72 (versions 2 and 3: up to temperature plus 4 bytes of padding, which version 4 turned into
 * `text_conditioning`; it and the later fields then take the server default) .. 88 (version 4). */
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
  int32_t cleanup;           /* coamd_cleanup */
  float temperature;         /* flow ODE noise scale in (0, 2]; 0 = server default (1) */
  /* ---- version 4 ---- */
  int32_t text_conditioning; /* coamd_text_conditioning */
  int32_t skeleton;          /* coamd_skeleton_mode */
  int32_t root_motion;       /* coamd_root_motion */
  int32_t reserved;          /* 0 */
} coamd_request;

/* What coamd_stream_sample() reports besides the pose (version 1 layout, no struct_size: new code
 * uses coamd_frame_info with coamd_reader_sample / coamd_stream_sample_at). */
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

/* Stream progress and the server's summary. Sizes accepted: 56 (versions 1 and 2, up to seed),
 * 88 (version 3: the settings the server really ran with) .. 104 (version 4). */
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
  /* ---- version 3 ---- */
  int32_t cleanup_applied;   /* the frames went through the server's foot-contact cleanup */
  float temperature;         /* the flow ODE noise scale the server used */
  uint32_t iterations;       /* masked-AR iterations the server ran */
  uint32_t ode_steps;        /* ODE steps per iteration */
  float cfg_scale;           /* classifier-free guidance scale used */
  float guidance_scale;      /* recognizer guidance step used */
  uint32_t max_batch;        /* most requests that shared one model call with this one */
  int32_t reserved;
  /* ---- version 4 ---- */
  int32_t skeleton_applied;  /* frames are forward kinematics on the server skeleton's rest offsets */
  int32_t root_motion;       /* coamd_root_motion the server ran with (0 until the summary) */
  int32_t out_of_vocabulary; /* the text asks for a motion the model was not trained on
                                (details: coamd_stream_interpretation) */
  float out_of_vocabulary_score; /* 0..1 */
} coamd_stream_info;

/* One sampled pose's metadata (version 3): what a reader or coamd_stream_sample_at reports.
 * Set struct_size (coamd_frame_info_init() does); the library writes up to it. For a Live Link
 * frame: motion_time_s is the frame's time in the motion (scene time at 20 fps = frame + alpha).
 * Sizes accepted: 56 (version 3) .. 72 (version 4: root motion). */
typedef struct coamd_frame_info {
  int32_t struct_size;
  int32_t state;             /* coamd_state of the playhead (readers); for coamd_stream_sample_at the
                                stream's: PLAYING while receiving, FINISHED once complete, ERROR,
                                CANCELLED */
  int32_t frame;             /* lower frame index of the interpolation, -1 when none yet */
  float alpha;               /* blend weight towards frame + 1, in [0, 1) */
  double motion_time_s;      /* time in the motion of the pose (seconds from frame 0) */
  double engine_time_s;      /* the engine time the pose was sampled for (readers; 0 otherwise) */
  uint32_t frames_available; /* frames received so far */
  uint32_t total_frames;     /* frames in the whole motion, 0 until the server's summary */
  int32_t rebuffer_count;    /* how often this playhead ran dry and went back to buffering */
  int32_t num_joints;        /* joints written: 21 */
  float fps;                 /* frames per second of the motion: 20 */
  int32_t coords;            /* coamd_coords of the arrays written */
  /* ---- version 4 ---- */
  /* Root motion of the pose (interpolated like the pose): the hips' horizontal velocity (x, 0, z)
   * in the stream's coordinates and units per second (m/s; Unreal cm/s), and the heading, the
   * facing angle in radians about the up axis: right-handed Y-up from +Z towards +X; Unity the
   * transform's yaw (from +Z towards +X); Unreal the yaw (from +X towards +Y). With
   * COAMD_ROOT_MOTION_IN_PLACE the positions hold no travel and these carry it. */
  float root_velocity[3];
  float heading;
} coamd_frame_info;

/* What the server knows (version 4): coamd_client_capabilities. Sizes accepted: 32. */
typedef struct coamd_capabilities {
  int32_t struct_size;
  int32_t num_actions;       /* actions the server knows (entries of the actions array) */
  int32_t num_styles;
  float min_duration_s;      /* request duration range */
  float max_duration_s;
  float fps;
  uint32_t max_text_chars;
  uint32_t rare_below_clips; /* actions with fewer training clips are followed less reliably */
} coamd_capabilities;

/* One action or style (version 4). Texts are NUL-terminated UTF-8, cut on a character boundary
 * when longer than the field. Sizes accepted: 344. */
typedef struct coamd_capability {
  int32_t struct_size;
  uint32_t training_clips;   /* training-split clips with this label (mirrored copies not counted) */
  char label[64];            /* e.g. "wave-left-hand", "elderly" */
  char side[16];             /* "left", "right", "both" or "" */
  char description[256];     /* a plain sentence, e.g. "a person waves the left hand" */
} coamd_capability;

#define COAMD_INTERPRETATION_MAX_LABELS 8
#define COAMD_LABEL_CHARS 64

/* How the server understood a text (version 4): the top content (action) and style labels with
 * their probabilities (best first; style "none" = no style named), the side, the out-of-vocabulary
 * flag, a note for people and the sentence the generator was conditioned on. Label i is the
 * NUL-terminated text at content_labels + i * COAMD_LABEL_CHARS. Sizes accepted: 3764. */
typedef struct coamd_interpretation {
  int32_t struct_size;
  int32_t num_content;       /* labels written (at most COAMD_INTERPRETATION_MAX_LABELS) */
  int32_t num_style;
  int32_t out_of_vocabulary;
  float out_of_vocabulary_score;
  char side[16];
  char content_labels[COAMD_INTERPRETATION_MAX_LABELS * COAMD_LABEL_CHARS];
  float content_scores[COAMD_INTERPRETATION_MAX_LABELS];
  char style_labels[COAMD_INTERPRETATION_MAX_LABELS * COAMD_LABEL_CHARS];
  float style_scores[COAMD_INTERPRETATION_MAX_LABELS];
  char note[512];
  char conditioned_text[2048];
} coamd_interpretation;

/* Settings of a session (version 4); coamd_session_options_init fills the defaults. Sizes accepted: 72. */
typedef struct coamd_session_options {
  int32_t struct_size;
  int32_t coordinates;       /* coamd_coords of every array the session returns */
  uint64_t seed;
  int32_t guidance;          /* coamd_guidance */
  float guidance_scale;      /* 0 = server default */
  float cfg_scale;           /* 0 = server default */
  uint32_t iterations;       /* masked-AR iterations per window; 0 = server default */
  uint32_t ode_steps;        /* 0 = server default */
  int32_t server_rotations;  /* 1: ask the server for local rotations; 0: solve them here */
  int32_t cleanup;           /* coamd_cleanup */
  float temperature;         /* 0 = server default */
  int32_t text_conditioning; /* coamd_text_conditioning */
  float lookahead_s;         /* how far ahead of real time the server keeps the stream; 0 = server default (1 s) */
  int32_t root_motion;       /* coamd_root_motion */
  float buffering_delay_s;   /* motion buffered ahead before playback starts or resumes; default 0.2 */
  uint32_t history_frames;   /* jitter-buffer slots (a ring: older frames are overwritten); 0 = 1200 (60 s) */
  int32_t reserved;          /* 0 */
} coamd_session_options;

typedef enum coamd_session_event_kind {
  COAMD_SESSION_OPENED = 1,      /* the session runs; first_frame is 0 */
  COAMD_SESSION_INSTRUCTION = 2, /* frames from first_frame on follow instruction `instruction` */
  COAMD_SESSION_CLOSED = 3       /* the last frame has been sent; first_frame = total frames */
} coamd_session_event_kind;

/* One session event (version 4). Sizes accepted: 24. */
typedef struct coamd_session_event {
  int32_t struct_size;
  int32_t kind;              /* coamd_session_event_kind */
  uint32_t instruction;      /* 0 = the opening text, then 1, 2, ... (coamd_session_instruct's numbers) */
  uint32_t first_frame;      /* the first frame that reflects the instruction (CLOSED: total frames) */
  float latency_ms;          /* instruction received -> its first frame sent, measured on the server */
  int32_t has_interpretation;/* the server sent how it understood the instruction's text */
} coamd_session_event;

/* Called with every log message at or above the minimum level, from any thread (library and
 * gRPC threads), one call at a time. It must return quickly and must not call
 * coamd_set_log_callback. message is valid only during the call. */
typedef void (*coamd_log_callback)(int32_t level, const char* message, void* user_data);

typedef struct coamd_client coamd_client;
typedef struct coamd_stream coamd_stream;
typedef struct coamd_reader coamd_reader;
typedef struct coamd_session coamd_session;

/* ---- library ---- */
COAMD_API int32_t coamd_abi_version(void);
/* The calling thread's last error message ("" when none), full length; valid until the thread's
 * next failing call. */
COAMD_API const char* coamd_last_error(void);
/* Name of joint i (0..20), NULL if out of range. */
COAMD_API const char* coamd_joint_name(int32_t joint);
/* Parent of joint i (-1 for the root, -2 if out of range). */
COAMD_API int32_t coamd_joint_parent(int32_t joint);
/* Unity HumanBodyBones name / Unreal mannequin bone name for joint i (NULL if out of range). */
COAMD_API const char* coamd_unity_humanoid_bone(int32_t joint);
COAMD_API const char* coamd_unreal_bone(int32_t joint);

/* ---- library, version 3 ---- */
/* The library's version, "MAJOR.MINOR.PATCH" (COAMD_VERSION_STRING of the header it was built
 * from); compare coamd_abi_version() with COAMD_ABI_VERSION to know which functions exist. */
COAMD_API const char* coamd_version(void);
/* One line for bug reports: library version, ABI version, gRPC and protobuf versions. */
COAMD_API const char* coamd_build_info(void);
/* Routes the library's messages (stream failures, connection problems) and gRPC's own log to
 * callback, for levels >= min_level (coamd_log_level). callback NULL: messages >= min_level go to
 * stderr (the default is COAMD_LOG_ERROR to stderr); min_level COAMD_LOG_OFF: nothing is logged.
 * When this returns, the previous callback is no longer running and will not be called again
 * (safe before unloading the code it lives in). */
COAMD_API int coamd_set_log_callback(coamd_log_callback callback, int32_t min_level, void* user_data);
/* Copies the calling thread's last error message. *out_len (may be NULL) receives its full length
 * in bytes, without the NUL. If buf_len > that length the whole text and a NUL are written and
 * COAMD_OK returned; otherwise COAMD_ERR_BUFFER_TOO_SMALL, and buf (when buf_len > 0) holds the
 * longest prefix that ends on a UTF-8 character boundary, NUL-terminated. buf may be NULL when
 * buf_len is 0 (asks for the length). Never changes the last error itself. */
COAMD_API int coamd_last_error_copy(char* buf, int32_t buf_len, int32_t* out_len);
/* Zeroes the first struct_size bytes of info and sets info->struct_size (pass sizeof(*info)). */
COAMD_API void coamd_frame_info_init(coamd_frame_info* info, int32_t struct_size);

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
/* (version 3) The skeleton for an engine rig or Live Link static data, in `coords`:
 * rest_offsets (>= 63 floats): parent-relative rest offsets, the frame every local rotation of
 *   this library refers to (local rotation identity everywhere = the rest pose; it is not upright);
 * reference_local_rotations (>= 84 floats): the upright reference pose (a T-pose: standing, facing
 *   forward, arms level to the sides, legs straight, toes on the floor; elbows and knees twisted
 *   so that they bend like the server's rotations) as local rotations relative to rest_offsets;
 * reference_positions (>= 63 floats): its joint positions, hips above the origin, toes on the floor.
 * Forward kinematics of the reference rotations on rest_offsets gives reference_positions.
 * Any output may be NULL (with length 0). Joint names: coamd_joint_name / coamd_unreal_bone. */
COAMD_API int coamd_client_reference_pose(coamd_client* client, int32_t coords,
                                          float* rest_offsets, int32_t rest_offsets_len,
                                          float* reference_local_rotations, int32_t reference_local_rotations_len,
                                          float* reference_positions, int32_t reference_positions_len);

/* ---- streams ---- */
/* Fills the defaults of the version-1 part (the first 64 bytes, `cleanup` included) and sets
 * struct_size = 64: it never writes past a version-1 caller's struct. A 64-byte request has no
 * temperature; compiled against this header the macro below makes it coamd_request_init instead. */
COAMD_API void coamd_request_defaults(coamd_request* request);
/* (version 3) Fills the defaults of the first struct_size bytes (64 .. sizeof(coamd_request)) and
 * sets struct_size: duration 4 s, seed 0, buffering_delay 0.2 s, Right-handed Y-up, everything
 * else 0 (= the server's default). */
COAMD_API int coamd_request_init(coamd_request* request, int32_t struct_size);
#if !defined(COAMD_BUILDING_LIBRARY) && !defined(COAMD_NO_REQUEST_DEFAULTS_MACRO)
#  define coamd_request_defaults(request) ((void)coamd_request_init((request), (int32_t)sizeof(*(request))))
#endif
/* Starts a Generate stream for `text`; returns at once, frames arrive on a background thread. */
COAMD_API int coamd_stream_start(coamd_client* client, const char* text, const coamd_request* request,
                                 coamd_stream** out_stream);
/* Cancels the RPC (idempotent, any thread). Playback keeps what arrived and reports CANCELLED. */
COAMD_API int coamd_stream_cancel(coamd_stream* stream);
/* Cancels if still running, joins the receiver thread and frees the stream. (Version 3: while
 * readers of the stream exist, the join and the frames' memory wait for the last reader.) */
COAMD_API void coamd_stream_destroy(coamd_stream* stream);
/* Playback on the stream's built-in playhead at engine time t (seconds, any origin, normally
 * non-decreasing); one thread at a time (other threads: readers).
 * Writes the interpolated pose (positions lerped, rotations slerped) into the non-NULL outputs:
 * positions63, local_rotations84 (relative to the parent joint), world_rotations84 (relative to
 * the rest pose, in the stream's frame). Outputs are left untouched while no frame has arrived.
 * (coamd_sample_info has no root motion: readers and coamd_stream_sample_at report it.) */
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
/* Copies the stream's error message (empty when none) into buf (NUL-terminated, truncated without
 * notice; version 3: coamd_stream_error_copy says when it truncates and how long the text is). */
COAMD_API int coamd_stream_error(coamd_stream* stream, char* buf, int32_t buf_len);
/* Blocks until the stream has ended (not for the engine thread). timeout_s <= 0: wait forever.
 * COAMD_ERR_STATE on time-out. */
COAMD_API int coamd_stream_wait(coamd_stream* stream, float timeout_s);
/* Moves playback to BUFFERING from the start (replay) without touching the received frames. */
COAMD_API int coamd_stream_restart_playback(coamd_stream* stream);

/* ---- streams, version 3 ---- */
/* The stream's failure message (empty when it did not fail), with coamd_last_error_copy's rules
 * for buf, buf_len, out_len and COAMD_ERR_BUFFER_TOO_SMALL. */
COAMD_API int coamd_stream_error_copy(coamd_stream* stream, char* buf, int32_t buf_len, int32_t* out_len);
/* The pose at a time in the motion (seconds from frame 0), without a playback clock (tools,
 * baking). Outputs as in coamd_reader_sample. COAMD_ERR_NOT_FOUND if that time was not received. */
COAMD_API int coamd_stream_sample_at(coamd_stream* stream, double motion_time_s, coamd_frame_info* info,
                                     float* positions, int32_t positions_len,
                                     float* local_rotations, int32_t local_rotations_len,
                                     float* world_rotations, int32_t world_rotations_len);
/* Frame `index` exactly as received; positions >= 63 floats, local_rotations >= 84 (either may be
 * NULL with length 0). COAMD_ERR_NOT_FOUND if not received (yet). */
COAMD_API int coamd_stream_frame_copy(coamd_stream* stream, uint32_t index, float* positions, int32_t positions_len,
                                      float* local_rotations, int32_t local_rotations_len);

/* ---- readers (version 3): independent playheads over one stream's frames ---- */
/* A new playhead over stream's frames, starting in BUFFERING at motion time 0.
 * subject_name: a label for the consumer (e.g. a Live Link subject), copied; NULL or "" = "CoAMD".
 * buffering_delay_s: < 0 takes the stream's request value. The reader keeps the received frames
 * alive: it stays valid after coamd_stream_destroy (which still cancels a running stream).
 * A reader is used by one thread at a time; different readers need no coordination. */
COAMD_API int coamd_reader_create(coamd_stream* stream, const char* subject_name, float buffering_delay_s,
                                  coamd_reader** out_reader);
COAMD_API void coamd_reader_destroy(coamd_reader* reader);
/* The reader's subject name (valid until coamd_reader_destroy); NULL for a NULL reader. */
COAMD_API const char* coamd_reader_subject_name(coamd_reader* reader);
/* Playback at engine time t, exactly like coamd_stream_sample but on this reader's playhead:
 * positions (>= 63 floats), local_rotations and world_rotations (>= 84 floats each), each may be
 * NULL with length 0; info may be NULL. Outputs are left untouched while no frame has arrived. */
COAMD_API int coamd_reader_sample(coamd_reader* reader, double engine_time_s, coamd_frame_info* info,
                                  float* positions, int32_t positions_len,
                                  float* local_rotations, int32_t local_rotations_len,
                                  float* world_rotations, int32_t world_rotations_len);
/* Back to BUFFERING at motion time 0 (replay) on this playhead only. */
COAMD_API int coamd_reader_restart(coamd_reader* reader);

/* ---- version 4: capabilities, interpretation ---- */
/* What the server knows: actions and styles with descriptions, training-clip counts and sides,
 * the duration range (GetCapabilities; fetched once per client, then cached). caps is required;
 * actions / styles may be NULL with length 0 (counts only). Every element of a non-NULL array has
 * its struct_size set (the first element's is the array's stride); the first min(len, count)
 * entries are written, caps->num_actions / num_styles say how many exist. */
COAMD_API int coamd_client_capabilities(coamd_client* client, coamd_capabilities* caps,
                                        coamd_capability* actions, int32_t actions_len,
                                        coamd_capability* styles, int32_t styles_len);
/* How the server understood the stream's text (from its summary); COAMD_ERR_NOT_FOUND until the
 * summary has arrived (or when the server sent none). */
COAMD_API int coamd_stream_interpretation(coamd_stream* stream, coamd_interpretation* out);

/* ---- version 5: recorded (action, style) pairs ---- */
/* Training-split clips of every (action, style) pair: counts[a * num_styles + s] for the a-th
 * action and the s-th style in coamd_client_capabilities' order (mirrored copies not counted).
 * 0: the dataset never recorded that action in that style; for an action with at least
 * rare_below_clips clips, a request for the pair gets the action without the style and the
 * interpretation's note says so, so an engine UI can offer only the styles recorded with an
 * action. *num_pairs (required) is set to num_actions * num_styles; counts may be NULL with
 * counts_len 0 (size query), else its first min(counts_len, *num_pairs) entries are written. All
 * zero when the server's checkpoint carries no pair counts. Cached with the capabilities. */
COAMD_API int coamd_client_pair_clips(coamd_client* client, uint32_t* counts, int32_t counts_len,
                                      int32_t* num_pairs);

/* ---- sessions (version 4): an endless motion whose instruction changes mid-stream ---- */
/* Defaults of the first struct_size bytes (pass sizeof): Right-handed Y-up, buffering 0.2 s,
 * history 1200 frames, everything else 0 (= the server's default). */
COAMD_API int coamd_session_options_init(coamd_session_options* options, int32_t struct_size);
/* Opens a Session RPC with the first instruction `text`; returns at once, frames arrive on a
 * background thread into a ring jitter buffer of history_frames slots, played back like a
 * Generate stream (coamd_session_sample). options may be NULL (defaults). */
COAMD_API int coamd_session_open(coamd_client* client, const coamd_session_options* options, const char* text,
                                 coamd_session** out_session);
/* Sends a new instruction (any thread); *out_instruction (may be NULL) receives its number (1, 2,
 * ... in the order sent), which the INSTRUCTION event for it carries. COAMD_ERR_STATE after
 * coamd_session_close or once the session ended. */
COAMD_API int coamd_session_instruct(coamd_session* session, const char* text, uint32_t* out_instruction);
/* Asks the server to end the session: it sends its last frames and a CLOSED event, then the
 * stream completes (playback then FINISHED at its last frame). Idempotent. */
COAMD_API int coamd_session_close(coamd_session* session);
/* Cancels the RPC at once (idempotent, any thread); playback reports CANCELLED. */
COAMD_API int coamd_session_cancel(coamd_session* session);
/* Cancels if still running, joins the receiver thread and frees the session. */
COAMD_API void coamd_session_destroy(coamd_session* session);
/* Playback at engine time t on the session's playhead, exactly like coamd_reader_sample (one thread
 * at a time; no allocation, no lock). A playhead that fell further behind than the ring holds
 * (e.g. a paused game) jumps forward to the oldest frame still held. */
COAMD_API int coamd_session_sample(coamd_session* session, double engine_time_s, coamd_frame_info* info,
                                   float* positions, int32_t positions_len,
                                   float* local_rotations, int32_t local_rotations_len,
                                   float* world_rotations, int32_t world_rotations_len);
/* Takes the oldest unread event: COAMD_OK with *event (and *interpretation when not NULL and the
 * event has one) written, or COAMD_ERR_NOT_FOUND when none is waiting (no error text is set).
 * Takes a short lock shared with the receiver thread; never blocks on the network. */
COAMD_API int coamd_session_next_event(coamd_session* session, coamd_session_event* event,
                                       coamd_interpretation* interpretation);
/* Blocks until the session has ended (not for the engine thread); timeout_s <= 0: forever.
 * COAMD_ERR_STATE on time-out. */
COAMD_API int coamd_session_wait(coamd_session* session, float timeout_s);
/* The session's failure message (empty when it did not fail), with coamd_last_error_copy's rules. */
COAMD_API int coamd_session_error_copy(coamd_session* session, char* buf, int32_t buf_len, int32_t* out_len);

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
/* (version 3) The upright reference pose (see coamd_client_reference_pose) of any rest offsets
 * given in `coords`, without a client. */
COAMD_API int coamd_reference_pose(const float* rest_offsets, int32_t rest_offsets_len, int32_t coords,
                                   float* reference_local_rotations, int32_t reference_local_rotations_len,
                                   float* reference_positions, int32_t reference_positions_len);

#ifdef __cplusplus
}
#endif
#endif /* COAMD_CLIENT_H */
