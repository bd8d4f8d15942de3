/* SHA-512/256 of many buffers at once: aria.apps.storage._sha512.sha512_256_many.
 *
 * Chunk IDs are SHA-512/256, and hashing is most of what extract (verifying every chunk) and make
 * cost. One SHA-512 stream is a chain of 64-bit additions and rotations that a core runs at about
 * 5 cycles a byte (OpenSSL's best on x86-64), whatever its vector width. Hashing eight independent
 * chunks at once, one per 64-bit lane of an AVX-512 register, runs the same rounds on eight
 * streams for the cost of one (native 64-bit rotations and three-input logic make a round about 25
 * instructions): measured 3 to 4 times OpenSSL's throughput on one core. This is the multi-buffer
 * technique of Intel's ISA-L crypto, written from FIPS 180-4.
 *
 * Each lane takes the next chunk when its own is done (longest chunks first, so lanes finish
 * together); a chunk's last partial block and padding are hashed from a small per-lane buffer.
 * The GIL is released while hashing. Importing the module fails on a CPU (or OS) without AVX-512F
 * and AVX-512BW, so callers fall back to hashlib.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 8
#define BLOCK 128
#define DIGEST 32

static const uint64_t K[80] = {
    0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL, 0xb5c0fbcfec4d3b2fULL, 0xe9b5dba58189dbbcULL,
    0x3956c25bf348b538ULL, 0x59f111f1b605d019ULL, 0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL,
    0xd807aa98a3030242ULL, 0x12835b0145706fbeULL, 0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL,
    0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL, 0x9bdc06a725c71235ULL, 0xc19bf174cf692694ULL,
    0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL, 0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL,
    0x2de92c6f592b0275ULL, 0x4a7484aa6ea6e483ULL, 0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL,
    0x983e5152ee66dfabULL, 0xa831c66d2db43210ULL, 0xb00327c898fb213fULL, 0xbf597fc7beef0ee4ULL,
    0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL, 0x06ca6351e003826fULL, 0x142929670a0e6e70ULL,
    0x27b70a8546d22ffcULL, 0x2e1b21385c26c926ULL, 0x4d2c6dfc5ac42aedULL, 0x53380d139d95b3dfULL,
    0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL, 0x81c2c92e47edaee6ULL, 0x92722c851482353bULL,
    0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL, 0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL,
    0xd192e819d6ef5218ULL, 0xd69906245565a910ULL, 0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL,
    0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL, 0x2748774cdf8eeb99ULL, 0x34b0bcb5e19b48a8ULL,
    0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL, 0x5b9cca4f7763e373ULL, 0x682e6ff3d6b2b8a3ULL,
    0x748f82ee5defb2fcULL, 0x78a5636f43172f60ULL, 0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
    0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL, 0xbef9a3f7b2c67915ULL, 0xc67178f2e372532bULL,
    0xca273eceea26619cULL, 0xd186b8c721c0c207ULL, 0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL,
    0x06f067aa72176fbaULL, 0x0a637dc5a2c898a6ULL, 0x113f9804bef90daeULL, 0x1b710b35131c471bULL,
    0x28db77f523047d84ULL, 0x32caab7b40c72493ULL, 0x3c9ebe0a15c9bebcULL, 0x431d67c49c100d4cULL,
    0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL, 0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL,
};

/* SHA-512/256's initial hash value (FIPS 180-4, 5.3.6.2). */
static const uint64_t IV[8] = {
    0x22312194fc2bf72cULL, 0x9f555fa3c84c64c2ULL, 0x2393b86b6f53b151ULL, 0x963877195940eabdULL,
    0x96283ee2a88effe3ULL, 0xbe5e1e2553863992ULL, 0x2b0199fc2c85b8aaULL, 0x0eb72ddc81c52ca2ULL,
};

typedef struct {
    const uint8_t *data;
    size_t length;
    uint8_t *out; /* DIGEST bytes */
} Job;

typedef struct {
    const Job *job;         /* NULL while the lane is idle */
    const uint8_t *next;    /* the next whole block of the job's data */
    size_t whole_left;      /* whole data blocks still to hash */
    int tail_left;          /* then these padding blocks (1 or 2) from tail */
    int tail_next;
    uint8_t tail[2 * BLOCK];
} Lane;

#define AVX512 __attribute__((target("avx512f,avx512bw")))

AVX512 static inline __m512i xor3(__m512i a, __m512i b, __m512i c) {
    return _mm512_ternarylogic_epi64(a, b, c, 0x96);
}

/* One 128-byte block of each lane's message into the eight lanes' states. */
AVX512 static void compress(__m512i state[8], const uint8_t *const blocks[LANES]) {
    const __m512i byteswap = _mm512_set_epi64(
        0x08090a0b0c0d0e0fULL, 0x0001020304050607ULL, 0x08090a0b0c0d0e0fULL, 0x0001020304050607ULL,
        0x08090a0b0c0d0e0fULL, 0x0001020304050607ULL, 0x08090a0b0c0d0e0fULL, 0x0001020304050607ULL);
    const __m512i addresses = _mm512_loadu_si512((const void *)blocks);
    __m512i w[16];
    for (int t = 0; t < 16; t++) {
        /* Word t of every lane's block: the addresses themselves are the gather's indices. */
        __m512i words = _mm512_i64gather_epi64(_mm512_add_epi64(addresses, _mm512_set1_epi64(8 * t)), NULL, 1);
        w[t] = _mm512_shuffle_epi8(words, byteswap);
    }
    __m512i a = state[0], b = state[1], c = state[2], d = state[3];
    __m512i e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 80; t++) {
        __m512i wt;
        if (t < 16) {
            wt = w[t];
        } else {
            __m512i w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
            __m512i s0 = xor3(_mm512_ror_epi64(w15, 1), _mm512_ror_epi64(w15, 8), _mm512_srli_epi64(w15, 7));
            __m512i s1 = xor3(_mm512_ror_epi64(w2, 19), _mm512_ror_epi64(w2, 61), _mm512_srli_epi64(w2, 6));
            wt = _mm512_add_epi64(_mm512_add_epi64(w[t & 15], s0), _mm512_add_epi64(w[(t - 7) & 15], s1));
            w[t & 15] = wt;
        }
        __m512i sum1 = xor3(_mm512_ror_epi64(e, 14), _mm512_ror_epi64(e, 18), _mm512_ror_epi64(e, 41));
        __m512i choice = _mm512_ternarylogic_epi64(e, f, g, 0xca);
        __m512i t1 = _mm512_add_epi64(_mm512_add_epi64(h, sum1),
                                      _mm512_add_epi64(choice, _mm512_add_epi64(wt, _mm512_set1_epi64((long long)K[t]))));
        __m512i sum0 = xor3(_mm512_ror_epi64(a, 28), _mm512_ror_epi64(a, 34), _mm512_ror_epi64(a, 39));
        __m512i majority = _mm512_ternarylogic_epi64(a, b, c, 0xe8);
        __m512i t2 = _mm512_add_epi64(sum0, majority);
        h = g;
        g = f;
        f = e;
        e = _mm512_add_epi64(d, t1);
        d = c;
        c = b;
        b = a;
        a = _mm512_add_epi64(t1, t2);
    }
    state[0] = _mm512_add_epi64(state[0], a);
    state[1] = _mm512_add_epi64(state[1], b);
    state[2] = _mm512_add_epi64(state[2], c);
    state[3] = _mm512_add_epi64(state[3], d);
    state[4] = _mm512_add_epi64(state[4], e);
    state[5] = _mm512_add_epi64(state[5], f);
    state[6] = _mm512_add_epi64(state[6], g);
    state[7] = _mm512_add_epi64(state[7], h);
}

/* Set a lane up for a job: its whole blocks come from the data, the rest and padding from tail. */
static void start(Lane *lane, const Job *job) {
    size_t rest = job->length % BLOCK;
    int padding_blocks = rest + 1 + 16 <= BLOCK ? 1 : 2; /* 0x80, then a 128-bit bit length */
    uint64_t bits = (uint64_t)job->length << 3;         /* the high 64 bits stay 0: chunks are small */
    uint8_t *end = lane->tail + padding_blocks * BLOCK;
    lane->job = job;
    lane->next = job->data;
    lane->whole_left = job->length / BLOCK;
    lane->tail_left = padding_blocks;
    lane->tail_next = 0;
    memset(lane->tail, 0, sizeof lane->tail);
    if (rest) {
        memcpy(lane->tail, job->data + job->length - rest, rest);
    }
    lane->tail[rest] = 0x80;
    for (int i = 0; i < 8; i++) {
        end[-1 - i] = (uint8_t)(bits >> (8 * i));
    }
}

AVX512 static void hash_jobs(const Job *const *jobs, size_t count) {
    static const uint8_t idle_block[BLOCK];
    Lane lanes[LANES];
    __m512i state[8];
    const uint8_t *blocks[LANES];
    size_t next_job = 0;
    int active = 0;
    for (int i = 0; i < 8; i++) {
        state[i] = _mm512_set1_epi64((long long)IV[i]);
    }
    for (int l = 0; l < LANES; l++) {
        lanes[l].job = NULL;
        if (next_job < count) {
            start(&lanes[l], jobs[next_job++]);
            active++;
        }
    }
    while (active) {
        for (int l = 0; l < LANES; l++) {
            Lane *lane = &lanes[l];
            if (lane->job == NULL) {
                blocks[l] = idle_block; /* hashed for nothing: cheaper than narrowing the vectors */
            } else if (lane->whole_left) {
                blocks[l] = lane->next;
                lane->next += BLOCK;
                lane->whole_left--;
            } else {
                blocks[l] = lane->tail + BLOCK * lane->tail_next++;
                lane->tail_left--;
            }
        }
        compress(state, blocks);
        for (int l = 0; l < LANES; l++) {
            Lane *lane = &lanes[l];
            if (lane->job == NULL || lane->whole_left || lane->tail_left) {
                continue;
            }
            uint64_t words[4][LANES];
            for (int i = 0; i < 4; i++) {
                _mm512_storeu_si512(words[i], state[i]);
            }
            for (int i = 0; i < 4; i++) {
                for (int b = 0; b < 8; b++) {
                    lane->job->out[8 * i + b] = (uint8_t)(words[i][l] >> (56 - 8 * b));
                }
            }
            __mmask8 mask = (__mmask8)(1u << l);
            for (int i = 0; i < 8; i++) {
                state[i] = _mm512_mask_mov_epi64(state[i], mask, _mm512_set1_epi64((long long)IV[i]));
            }
            if (next_job < count) {
                start(lane, jobs[next_job++]);
            } else {
                lane->job = NULL;
                active--;
            }
        }
    }
}

static int longest_first(const void *left, const void *right) {
    size_t a = (*(const Job *const *)left)->length, b = (*(const Job *const *)right)->length;
    return (a < b) - (a > b);
}

static PyObject *sha512_256_many(PyObject *module, PyObject *buffers) {
    PyObject *sequence = PySequence_Fast(buffers, "sha512_256_many() needs a sequence of buffers");
    if (sequence == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
    PyObject **items = PySequence_Fast_ITEMS(sequence);
    PyObject *result = NULL, *digests = NULL;
    Py_buffer *views = PyMem_Calloc((size_t)count + 1, sizeof(Py_buffer));
    Job *jobs = PyMem_Calloc((size_t)count + 1, sizeof(Job));
    const Job **order = PyMem_Calloc((size_t)count + 1, sizeof(Job *));
    Py_ssize_t held = 0;
    if (views == NULL || jobs == NULL || order == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    digests = PyBytes_FromStringAndSize(NULL, count * DIGEST);
    if (digests == NULL) {
        goto done;
    }
    for (; held < count; held++) {
        if (PyObject_GetBuffer(items[held], &views[held], PyBUF_SIMPLE) < 0) {
            goto done;
        }
        jobs[held].data = views[held].buf;
        jobs[held].length = (size_t)views[held].len;
        jobs[held].out = (uint8_t *)PyBytes_AS_STRING(digests) + held * DIGEST;
        order[held] = &jobs[held];
    }
    Py_BEGIN_ALLOW_THREADS
    qsort(order, (size_t)count, sizeof(Job *), longest_first);
    hash_jobs(order, (size_t)count);
    Py_END_ALLOW_THREADS
    result = PyList_New(count);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *digest = PyBytes_FromStringAndSize(PyBytes_AS_STRING(digests) + i * DIGEST, DIGEST);
        if (digest == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, digest);
    }
done:
    for (Py_ssize_t i = 0; i < held; i++) {
        PyBuffer_Release(&views[i]);
    }
    PyMem_Free(views);
    PyMem_Free(jobs);
    PyMem_Free(order);
    Py_XDECREF(digests);
    Py_DECREF(sequence);
    return result;
}

static PyMethodDef METHODS[] = {
    {"sha512_256_many", sha512_256_many, METH_O,
     "sha512_256_many(buffers) -> list of 32-byte SHA-512/256 digests, one per buffer, in order.\n\n"
     "Eight buffers are hashed at once (AVX-512); the GIL is released meanwhile."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {
    PyModuleDef_HEAD_INIT, "_sha512", "SHA-512/256 of many buffers at once, eight per AVX-512 register.", -1,
    METHODS,
};

PyMODINIT_FUNC PyInit__sha512(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) {
        PyErr_SetString(PyExc_ImportError, "_sha512 needs a CPU with AVX-512F and AVX-512BW");
        return NULL;
    }
    PyObject *module = PyModule_Create(&MODULE);
    if (module != NULL && PyModule_AddIntConstant(module, "LANES", LANES) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
