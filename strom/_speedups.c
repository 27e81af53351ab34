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
"reduce_batch(reduce, table, values, keys)\n"
"--\n\n"
"A rolling reduce over a batch, as ReduceOperator.process_keyed runs it: for each value and\n"
"its key, ``table[key] = reduce(table[key], value)`` (the value itself for a key not in the\n"
"dict ``table``). Returns the list of the new results, one a record.");

static PyObject *
reduce_batch(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *reduce, *table, *values, *keys;
    if (!PyArg_ParseTuple(args, "OO!O!O!:reduce_batch", &reduce, &PyDict_Type, &table,
                          &PyList_Type, &values, &PyList_Type, &keys)) {
        return NULL;
    }
    if (PyList_GET_SIZE(values) != PyList_GET_SIZE(keys)) {
        PyErr_SetString(PyExc_ValueError, "keys must be parallel to values");
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    /* The reduce function is user code: it may change the lists, so sizes are read each time
     * and every object it may see is held while it runs. */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(values) && i < PyList_GET_SIZE(keys); i++) {
        PyObject *value = Py_NewRef(PyList_GET_ITEM(values, i));
        PyObject *key = Py_NewRef(PyList_GET_ITEM(keys, i));
        PyObject *current = PyDict_GetItemWithError(table, key);
        if (current != NULL) {
            PyObject *pair[2] = {Py_NewRef(current), value};
            PyObject *result = PyObject_Vectorcall(reduce, pair, 2, NULL);
            Py_DECREF(pair[0]);
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

static PyMethodDef speedups_methods[] = {
    {"split_by_key", split_by_key, METH_VARARGS, split_by_key_doc},
    {"reduce_batch", reduce_batch, METH_VARARGS, reduce_batch_doc},
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
