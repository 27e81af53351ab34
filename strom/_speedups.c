/* Two per-record loops of Strom's in C (issue 12): the hash partitioner's split of a record
 * batch, and the rolling reduce (``reduce_batch``, below), whose Python loop spent ~45 of its
 * ~140 ns a record on the interpreter's dispatch. (Record batches on the wire: _records.c.)
 *
 * A hash edge puts every record in the channel of its key's key group (DESIGN.md §4):
 * stable_hash(key) % max_parallelism * n // max_parallelism. In Python that is a loop with a
 * key->channel cache per record, and at parallelism 2 it cost word count about as much as
 * reading and splitting the lines (bench/README.md, "Session 9"). Here the loop runs in C and
 * the stable hash of the common key types (native_stable_hash) is computed directly, as
 * strom.graph.partitioning.stable_hash computes it, with no cache; any other key is placed by
 * the Python function the caller passes, so placement is the same in every process whether or
 * not this module was built.
 *
 * The module is optional: setup.py builds it where a C compiler is found, and
 * strom.graph.partitioning and taskmanager.runtime.operators fall back to their Python loops
 * without it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

/* CRC-32 as zlib.crc32 computes it (the IEEE polynomial, reflected), a byte at a time. */
static uint32_t crc_table[256];

static void
make_crc_table(void)
{
    for (uint32_t byte = 0; byte < 256; byte++) {
        uint32_t crc = byte;
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
        }
        crc_table[byte] = crc;
    }
}

static uint32_t
crc32_of(const unsigned char *data, Py_ssize_t size)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (Py_ssize_t i = 0; i < size; i++) {
        crc = crc_table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    }
    return crc ^ 0xFFFFFFFFu;
}

/* partitioning._mix64: MurmurHash3's 64-bit finaliser. */
static uint64_t
mix64(uint64_t value)
{
    value ^= value >> 33;
    value *= 0xFF51AFD7ED558CCDull;
    value ^= value >> 33;
    value *= 0xC4CEB9FE1A85EC53ull;
    value ^= value >> 33;
    return value;
}

static uint64_t
spread(uint64_t crc)
{
    /* partitioning._spread */
    return ((crc * 0x9E3779B1ull) & 0xFFFFFFFFull) >> 16;
}

/* Tuples nested deeper than this are left to Python. */
#define MAX_DEPTH 8

/* The stable hash of ``key`` into *hash when this module computes it for that type: 1; 0 when
 * the caller must ask Python. Never leaves an exception set. The types: an exact str, int
 * (within 64 bits), float, bytes, bool and None, and exact tuples and lists of those. */
static int
native_stable_hash(PyObject *key, uint64_t *hash, int depth)
{
    if (PyUnicode_CheckExact(key)) {
        Py_ssize_t size;
        /* Fails only for lone surrogates, which stable_hash encodes with "surrogatepass". */
        const char *data = PyUnicode_AsUTF8AndSize(key, &size);
        if (data == NULL) {
            PyErr_Clear();
            return 0;
        }
        *hash = spread(crc32_of((const unsigned char *)data, size));
        return 1;
    }
    if (PyLong_CheckExact(key)) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(key, &overflow);
        if (overflow || (value == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
        *hash = mix64((uint64_t)value); /* two's complement: stable_hash's `& _MASK64` */
        return 1;
    }
    if (key == Py_True || key == Py_False || key == Py_None) {
        *hash = mix64(key == Py_True ? 1 : key == Py_None ? 2 : 0);
        return 1;
    }
    if (PyFloat_CheckExact(key)) {
        double value = PyFloat_AS_DOUBLE(key);
        if (value == floor(value) && isfinite(value)) {
            /* is_integer(): the hash of int(key), here only where that fits in 64 bits */
            if (value < -9223372036854775808.0 || value >= 9223372036854775808.0) {
                return 0;
            }
            *hash = mix64((uint64_t)(long long)value);
            return 1;
        }
        unsigned char packed[8];
        if (PyFloat_Pack8(value, (char *)packed, 1) < 0) { /* struct.pack("<d") */
            PyErr_Clear();
            return 0;
        }
        *hash = spread(crc32_of(packed, 8));
        return 1;
    }
    if (PyBytes_CheckExact(key)) {
        *hash = spread(crc32_of((const unsigned char *)PyBytes_AS_STRING(key),
                                PyBytes_GET_SIZE(key)));
        return 1;
    }
    if ((PyTuple_CheckExact(key) || PyList_CheckExact(key)) && depth < MAX_DEPTH) {
        PyObject **items = PySequence_Fast_ITEMS(key);
        Py_ssize_t size = PySequence_Fast_GET_SIZE(key);
        uint64_t result = 17;
        for (Py_ssize_t i = 0; i < size; i++) {
            uint64_t item;
            if (!native_stable_hash(items[i], &item, depth + 1)) {
                return 0;
            }
            /* (result * 31 + hash(item)) & 0xFFFFFFFF: exact, as 2**32 divides 2**64 */
            result = (result * 31 + item) & 0xFFFFFFFFull;
        }
        *hash = result;
        return 1;
    }
    return 0;
}

static PyObject *
new_lists(Py_ssize_t n)
{
    PyObject *lists = PyList_New(n);
    if (lists == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *list = PyList_New(0);
        if (list == NULL) {
            Py_DECREF(lists);
            return NULL;
        }
        PyList_SET_ITEM(lists, i, list);
    }
    return lists;
}

PyDoc_STRVAR(split_by_key_doc,
"split_by_key(values, timestamps, key_of, place, n, max_parallelism)\n"
"--\n\n"
"Spread the list ``values`` over ``n`` channels by the key group of ``key_of(value)``.\n"
"Returns ``(buckets, stamp_buckets, key_buckets)``: per channel the values, their\n"
"timestamps (None when ``timestamps`` is None, else a list parallel to ``values``) and their\n"
"keys. ``place(key)`` gives the channel of a key whose hash this module does not compute.");

static PyObject *
split_by_key(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *values, *timestamps, *key_of, *place;
    Py_ssize_t n, max_parallelism;
    if (!PyArg_ParseTuple(args, "O!OOOnn:split_by_key", &PyList_Type, &values, &timestamps,
                          &key_of, &place, &n, &max_parallelism)) {
        return NULL;
    }
    if (n < 1 || max_parallelism < 1) {
        PyErr_SetString(PyExc_ValueError, "n and max_parallelism must be >= 1");
        return NULL;
    }
    int stamped = timestamps != Py_None;
    if (stamped) {
        if (!PyList_Check(timestamps)) {
            PyErr_SetString(PyExc_TypeError, "timestamps must be a list or None");
            return NULL;
        }
        if (PyList_GET_SIZE(timestamps) != PyList_GET_SIZE(values)) {
            PyErr_SetString(PyExc_ValueError, "timestamps must be parallel to values");
            return NULL;
        }
    }
    PyObject *buckets = new_lists(n);
    PyObject *key_buckets = new_lists(n);
    PyObject *stamp_buckets = stamped ? new_lists(n) : Py_NewRef(Py_None);
    if (buckets == NULL || key_buckets == NULL || stamp_buckets == NULL) {
        goto fail;
    }
    /* The key selector is user code: it may change ``values``, so sizes are read each time
     * and the value is held while it runs. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values); i++) {
        if (stamped && i >= PyList_GET_SIZE(timestamps)) {
            PyErr_SetString(PyExc_ValueError, "timestamps must be parallel to values");
            goto fail;
        }
        PyObject *value = Py_NewRef(PyList_GET_ITEM(values, i));
        PyObject *key = PyObject_CallOneArg(key_of, value);
        if (key == NULL) {
            Py_DECREF(value);
            goto fail;
        }
        Py_ssize_t channel;
        uint64_t hash;
        if (native_stable_hash(key, &hash, 0)) {
            channel = (Py_ssize_t)(hash % (uint64_t)max_parallelism * (uint64_t)n /
                                   (uint64_t)max_parallelism);
        }
        else {
            PyObject *placed = PyObject_CallOneArg(place, key);
            channel = placed == NULL ? -1 : PyLong_AsSsize_t(placed);
            Py_XDECREF(placed);
            if (channel == -1 && PyErr_Occurred()) {
                Py_DECREF(key);
                Py_DECREF(value);
                goto fail;
            }
        }
        if (channel < 0 || channel >= n) {
            PyErr_Format(PyExc_ValueError, "channel %zd of a key is not in [0, %zd)", channel, n);
            Py_DECREF(key);
            Py_DECREF(value);
            goto fail;
        }
        int failed = PyList_Append(PyList_GET_ITEM(buckets, channel), value) < 0 ||
                     PyList_Append(PyList_GET_ITEM(key_buckets, channel), key) < 0 ||
                     (stamped && PyList_Append(PyList_GET_ITEM(stamp_buckets, channel),
                                               PyList_GET_ITEM(timestamps, i)) < 0);
        Py_DECREF(key);
        Py_DECREF(value);
        if (failed) {
            goto fail;
        }
    }
    return Py_BuildValue("(NNN)", buckets, stamp_buckets, key_buckets);
fail:
    Py_XDECREF(buckets);
    Py_XDECREF(key_buckets);
    Py_XDECREF(stamp_buckets);
    return NULL;
}

PyDoc_STRVAR(reduce_batch_doc,
"reduce_batch(reduce, table, values, keys, key_of=None)\n"
"--\n\n"
"A rolling reduce over a batch, as ReduceOperator runs it: for each value and its key,\n"
"``table[key] = reduce(table[key], value)`` (the value itself for a key not in the dict\n"
"``table``). ``keys`` is parallel to ``values``, or None to call ``key_of(value)``. Returns\n"
"the list of the new results, one a record.");

/* ``function(*args)`` with room before ``args`` (args[-1] is writable): a bound method then
 * calls its function without copying the arguments. */
static inline PyObject *
call_with_room(PyObject *function, PyObject **args, size_t count)
{
    return PyObject_Vectorcall(function, args, count | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

static PyObject *
reduce_batch(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *reduce, *table, *values, *keys, *key_of = Py_None;
    if (!PyArg_ParseTuple(args, "OO!O!O|O:reduce_batch", &reduce, &PyDict_Type, &table,
                          &PyList_Type, &values, &keys, &key_of)) {
        return NULL;
    }
    int have_keys = keys != Py_None;
    if (have_keys && !PyList_Check(keys)) {
        PyErr_SetString(PyExc_TypeError, "keys must be a list or None");
        return NULL;
    }
    if (have_keys && PyList_GET_SIZE(values) != PyList_GET_SIZE(keys)) {
        PyErr_SetString(PyExc_ValueError, "keys must be parallel to values");
        return NULL;
    }
    if (!have_keys && key_of == Py_None) {
        PyErr_SetString(PyExc_TypeError, "reduce_batch needs keys or key_of");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    /* The reduce function and the key selector are user code: they may change the lists, so
     * sizes are read each time and every object they may see is held while they run. */
    for (Py_ssize_t i = 0;
         i < PyList_GET_SIZE(values) && (!have_keys || i < PyList_GET_SIZE(keys)); i++) {
        PyObject *value = Py_NewRef(PyList_GET_ITEM(values, i));
        PyObject *key;
        if (have_keys) {
            key = Py_NewRef(PyList_GET_ITEM(keys, i));
        }
        else {
            PyObject *slots[2] = {NULL, value};
            key = call_with_room(key_of, slots + 1, 1);
            if (key == NULL) {
                Py_DECREF(value);
                Py_DECREF(out);
                return NULL;
            }
        }
        PyObject *current = PyDict_GetItemWithError(table, key);
        if (current != NULL) {
            PyObject *slots[3] = {NULL, Py_NewRef(current), value};
            PyObject *result = call_with_room(reduce, slots + 1, 2);
            Py_DECREF(slots[1]);
            Py_DECREF(value);
            value = result;
        }
        else if (PyErr_Occurred()) {
            Py_CLEAR(value);
        }
        int failed = value == NULL || PyDict_SetItem(table, key, value) < 0 ||
                     PyList_Append(out, value) < 0;
        Py_XDECREF(value);
        Py_DECREF(key);
        if (failed) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

PyDoc_STRVAR(call_each_doc,
"call_each(function, values, extra)\n"
"--\n\n"
"``function(value, extra)`` for each value of the list ``values`` in order, results dropped,\n"
"as a sink's ``invoke(value, context)`` runs over a batch. Returns None.");

static PyObject *
call_each(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *function, *values, *extra;
    if (!PyArg_ParseTuple(args, "OO!O:call_each", &function, &PyList_Type, &values, &extra)) {
        return NULL;
    }
    /* ``args`` holds ``extra``; the function may change ``values``: its size is read each
     * time and the value held while it runs. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values); i++) {
        PyObject *slots[3] = {NULL, Py_NewRef(PyList_GET_ITEM(values, i)), extra};
        PyObject *result = call_with_room(function, slots + 1, 2);
        Py_DECREF(slots[1]);
        if (result == NULL) {
            return NULL;
        }
        Py_DECREF(result);
    }
    Py_RETURN_NONE;
}

/* The start of the tumbling window of ``stamp`` (size > 0), as Python's
 * ``stamp - (stamp - offset) % size``; 0 when it does not fit in 64 bits. */
static int
window_start(long long stamp, long long size, long long offset, long long *start)
{
    long long shifted, rest;
    if (__builtin_sub_overflow(stamp, offset, &shifted)) {
        return 0;
    }
    rest = shifted % size;
    if (rest < 0) {
        rest += size;
    }
    return !__builtin_sub_overflow(stamp, rest, start);
}

PyDoc_STRVAR(tumbling_reduce_doc,
"tumbling_reduce(values, timestamps, keys, key_of, reduce, contents, keys_by_start, starts,\n"
"                push, size, offset, watermark, index, create=None, backend=None)\n"
"--\n\n"
"WindowOperator._process_tumbling's loop for a reduce, from ``index`` on: each record goes\n"
"into ``contents[key][start]`` (``reduce(current, value)``, or the value itself for a new\n"
"window, whose start is then added to ``keys_by_start`` and pushed on ``starts``). ``keys``\n"
"is parallel to ``values``, or None to call ``key_of``. With ``create`` (an aggregate), the\n"
"accumulator is ``reduce(value, current)``, ``current`` being ``create()`` for a new window,\n"
"and ``backend.current_key`` is the record's key while they run. Returns the index of the\n"
"first record it leaves to the caller (late, or with a timestamp that is not a 64-bit int),\n"
"or the batch's length.");

static PyObject *
tumbling_reduce(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *values, *timestamps, *keys, *key_of, *reduce, *contents, *keys_by_start, *starts,
        *push, *create = Py_None, *backend = Py_None;
    long long size, offset, watermark;
    Py_ssize_t index;
    if (!PyArg_ParseTuple(args, "O!O!OOOO!O!OOLLLn|OO:tumbling_reduce", &PyList_Type, &values,
                          &PyList_Type, &timestamps, &keys, &key_of, &reduce, &PyDict_Type,
                          &contents, &PyDict_Type, &keys_by_start, &starts, &push, &size,
                          &offset, &watermark, &index, &create, &backend)) {
        return NULL;
    }
    int aggregate = create != Py_None;
    if (keys != Py_None && !PyList_Check(keys)) {
        PyErr_SetString(PyExc_TypeError, "keys must be a list or None");
        return NULL;
    }
    if (size <= 0 || index < 0) {
        PyErr_SetString(PyExc_ValueError, "size must be > 0 and index >= 0");
        return NULL;
    }
    long long last = 0;
    PyObject *last_start = NULL; /* the int object of the start ``last`` */
    /* The key selector and the reduce function are user code: they may change the lists and
     * dicts, so sizes are read each time and every object they may see is held. */
    for (; index < PyList_GET_SIZE(values) && index < PyList_GET_SIZE(timestamps); index++) {
        PyObject *stamp_object = PyList_GET_ITEM(timestamps, index);
        if (!PyLong_CheckExact(stamp_object)) {
            break;
        }
        int overflow;
        long long stamp = PyLong_AsLongLongAndOverflow(stamp_object, &overflow);
        long long start, last_ms;
        if (overflow || (stamp == -1 && PyErr_Occurred()) ||
            !window_start(stamp, size, offset, &start) ||
            __builtin_add_overflow(start, size - 1, &last_ms) || last_ms <= watermark) {
            PyErr_Clear();
            break; /* late, or out of range: the caller's Python does as it always did */
        }
        if (keys != Py_None && index >= PyList_GET_SIZE(keys)) {
            break;
        }
        if (last_start == NULL || start != last) {
            Py_XDECREF(last_start);
            last_start = PyLong_FromLongLong(start);
            if (last_start == NULL) {
                return NULL;
            }
            last = start;
        }
        PyObject *value = Py_NewRef(PyList_GET_ITEM(values, index));
        PyObject *key = keys != Py_None ? Py_NewRef(PyList_GET_ITEM(keys, index))
                                        : PyObject_CallOneArg(key_of, value);
        PyObject *per_key = NULL, *current = NULL, *result = NULL;
        int failed = key == NULL;
        if (!failed) {
            per_key = Py_XNewRef(PyDict_GetItemWithError(contents, key));
            if (per_key == NULL) {
                failed = PyErr_Occurred() || (per_key = PyDict_New()) == NULL ||
                         PyDict_SetItem(contents, key, per_key) < 0;
            }
        }
        if (!failed) {
            current = Py_XNewRef(PyDict_GetItemWithError(per_key, last_start));
            failed = current == NULL && PyErr_Occurred();
        }
        if (!failed && current == NULL) {
            /* A new window of this key: note its start, then hold the record itself. */
            PyObject *with_start = PyDict_GetItemWithError(keys_by_start, last_start);
            if (with_start != NULL) {
                failed = PyList_Append(with_start, key) < 0;
            }
            else if (PyErr_Occurred()) {
                failed = 1;
            }
            else {
                PyObject *list = PyList_New(1);
                failed = list == NULL;
                if (!failed) {
                    PyList_SET_ITEM(list, 0, Py_NewRef(key));
                    failed = PyDict_SetItem(keys_by_start, last_start, list) < 0;
                    Py_DECREF(list);
                }
                if (!failed) {
                    PyObject *pushed = PyObject_CallFunctionObjArgs(push, starts, last_start,
                                                                    NULL);
                    failed = pushed == NULL;
                    Py_XDECREF(pushed);
                }
            }
            if (!failed && !aggregate) {
                result = Py_NewRef(value);
            }
        }
        else if (!failed && !aggregate) {
            PyObject *pair[2] = {current, value};
            result = PyObject_Vectorcall(reduce, pair, 2, NULL);
            failed = result == NULL;
        }
        if (!failed && aggregate) {
            failed = backend != Py_None && PyObject_SetAttrString(backend, "current_key", key) < 0;
            if (!failed && current == NULL) {
                current = PyObject_CallNoArgs(create);
                failed = current == NULL;
            }
            if (!failed) {
                PyObject *pair[2] = {value, current};
                result = PyObject_Vectorcall(reduce, pair, 2, NULL);
                failed = result == NULL;
            }
        }
        if (!failed) {
            failed = PyDict_SetItem(per_key, last_start, result) < 0;
        }
        Py_XDECREF(result);
        Py_XDECREF(current);
        Py_XDECREF(per_key);
        Py_XDECREF(key);
        Py_DECREF(value);
        if (failed) {
            Py_XDECREF(last_start);
            return NULL;
        }
    }
    Py_XDECREF(last_start);
    return PyLong_FromSsize_t(index);
}

PyDoc_STRVAR(fire_tumbling_doc,
"fire_tumbling(keys, contents, start, out)\n"
"--\n\n"
"The window ``start`` of each key in ``keys``, for a reduce with no window function: pops\n"
"``contents[key][start]`` (and the key's dict once empty) and appends it to ``out``.\n"
"Returns how many it appended.");

static PyObject *
fire_tumbling(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *keys, *contents, *start, *out;
    if (!PyArg_ParseTuple(args, "O!O!OO!:fire_tumbling", &PyList_Type, &keys, &PyDict_Type,
                          &contents, &start, &PyList_Type, &out)) {
        return NULL;
    }
    Py_ssize_t fired = 0;
    /* No user code runs here, but a key's __eq__ and __hash__ might: hold what is used. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = Py_NewRef(PyList_GET_ITEM(keys, i));
        PyObject *per_key = Py_XNewRef(PyDict_GetItemWithError(contents, key));
        int failed = per_key == NULL && PyErr_Occurred();
        if (per_key != NULL && !PyDict_Check(per_key)) {
            PyErr_SetString(PyExc_TypeError, "a key's windows must be a dict");
            failed = 1;
        }
        else if (per_key != NULL) {
            PyObject *accumulated = Py_XNewRef(PyDict_GetItemWithError(per_key, start));
            failed = (accumulated == NULL && PyErr_Occurred()) ||
                     (accumulated != NULL && PyDict_DelItem(per_key, start) < 0);
            if (!failed && PyDict_GET_SIZE(per_key) == 0) {
                failed = PyDict_DelItem(contents, key) < 0;
            }
            if (!failed && accumulated != NULL) {
                failed = PyList_Append(out, accumulated) < 0;
                fired += !failed;
            }
            Py_XDECREF(accumulated);
        }
        Py_XDECREF(per_key);
        Py_DECREF(key);
        if (failed) {
            return NULL;
        }
    }
    return PyLong_FromSsize_t(fired);
}

/* ------------------------------------------------------------------ memory fence */

PyDoc_STRVAR(fence_doc,
"fence()\n--\n\n"
"A full memory fence: every store this thread made before it is visible to other processes\n"
"before any load it makes after it. Shared-memory rings (taskmanager/network/shared_rings.py)\n"
"publish with it and look for a waiting peer after it; Python itself has no such barrier.");

static PyObject *
fence(PyObject *self, PyObject *unused)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(load_u64_doc,
"load_u64(buffer, offset)\n--\n\n"
"The unsigned 64-bit word at ``offset`` (a multiple of 8) of a writable buffer, read in one\n"
"atomic load: a shared-memory ring's positions, which another process stores meanwhile\n"
"(struct reads them a byte at a time, so a read could mix an old and a new value).");

PyDoc_STRVAR(store_u64_doc,
"store_u64(buffer, offset, value)\n--\n\n"
"Store ``value`` as the unsigned 64-bit word at ``offset`` (a multiple of 8) of a writable\n"
"buffer in one atomic store (see load_u64).");

static uint64_t *
word_at(Py_buffer *view, Py_ssize_t offset)
{
    if (offset < 0 || offset % 8 != 0 || offset > view->len - 8) {
        PyErr_SetString(PyExc_ValueError, "offset must be a multiple of 8 inside the buffer");
        return NULL;
    }
    return (uint64_t *)((char *)view->buf + offset);
}

static PyObject *
load_u64(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "w*n:load_u64", &view, &offset)) {
        return NULL;
    }
    uint64_t *word = word_at(&view, offset);
    PyObject *result = NULL;
    if (word != NULL) {
        result = PyLong_FromUnsignedLongLong(__atomic_load_n(word, __ATOMIC_SEQ_CST));
    }
    PyBuffer_Release(&view);
    return result;
}

static PyObject *
store_u64(PyObject *self, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t offset;
    unsigned long long value;
    if (!PyArg_ParseTuple(args, "w*nK:store_u64", &view, &offset, &value)) {
        return NULL;
    }
    uint64_t *word = word_at(&view, offset);
    if (word != NULL) {
        __atomic_store_n(word, (uint64_t)value, __ATOMIC_SEQ_CST);
    }
    PyBuffer_Release(&view);
    if (word == NULL) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef speedups_methods[] = {
    {"split_by_key", split_by_key, METH_VARARGS, split_by_key_doc},
    {"reduce_batch", reduce_batch, METH_VARARGS, reduce_batch_doc},
    {"call_each", call_each, METH_VARARGS, call_each_doc},
    {"tumbling_reduce", tumbling_reduce, METH_VARARGS, tumbling_reduce_doc},
    {"fire_tumbling", fire_tumbling, METH_VARARGS, fire_tumbling_doc},
    {"fence", fence, METH_NOARGS, fence_doc},
    {"load_u64", load_u64, METH_VARARGS, load_u64_doc},
    {"store_u64", store_u64, METH_VARARGS, store_u64_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "strom._speedups",
    "Strom's compiled hot path (optional): see strom/_speedups.c.",
    -1,
    speedups_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    make_crc_table();
    return PyModule_Create(&speedups_module);
}
