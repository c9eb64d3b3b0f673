"""Load a TFLite flatbuffer into plain Python structures (uses the `tflite` schema bindings only)."""
import numpy as np, tflite

_BUILTIN = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith('_')}
_OPTS = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith('_')}
_TTYPE = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith('_')}
_NP = {'FLOAT32': np.float32, 'INT8': np.int8, 'INT32': np.int32, 'UINT8': np.uint8, 'INT64': np.int64,
       'INT16': np.int16, 'BOOL': np.bool_, 'RESOURCE': None, 'FLOAT16': np.float16}
_ENUMS = {'Padding': {v: k for k, v in vars(tflite.Padding).items() if not k.startswith('_')},
          'FusedActivationFunction': {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith('_')}}

def _options(op):
    t = op.BuiltinOptionsType()
    if t == 0: return None, {}
    name = _OPTS[t]
    cls = getattr(tflite, name)
    tab = op.BuiltinOptions()
    o = cls(); o.Init(tab.Bytes, tab.Pos)
    d = {}
    for m in dir(cls):
        if m.startswith('_') or m in ('Init',) or m.startswith('GetRootAs') or m.endswith('BufferHasIdentifier'):
            continue
        if m.endswith('Length') or m.endswith('IsNone') or m.endswith('AsNumpy'):
            continue
        f = getattr(o, m)
        if not callable(f): continue
        try:
            v = f()
        except TypeError:
            # vector accessor: use AsNumpy
            if hasattr(o, m + 'AsNumpy'):
                v = getattr(o, m + 'AsNumpy')()
                v = v.tolist() if isinstance(v, np.ndarray) else v
            else:
                continue
        if m in _ENUMS: v = _ENUMS[m].get(v, v)
        d[m] = v
    return name, d

def load(path):
    buf = open(path, 'rb').read()
    m = tflite.Model.GetRootAsModel(buf, 0)
    opcodes = []
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        opcodes.append((_BUILTIN.get(code, code), oc.Version(),
                        oc.CustomCode().decode() if oc.CustomCode() else None))
    buffers = []
    for i in range(m.BuffersLength()):
        b = m.Buffers(i)
        if b.Offset() > 1:  # large-buffer mode
            buffers.append(np.frombuffer(buf, np.uint8, b.Size(), b.Offset()))
        else:
            buffers.append(b.DataAsNumpy() if b.DataLength() else None)
    subgraphs = []
    for si in range(m.SubgraphsLength()):
        sg = m.Subgraphs(si)
        tensors = []
        for ti in range(sg.TensorsLength()):
            t = sg.Tensors(ti)
            q = t.Quantization()
            qd = None
            if q is not None and (q.ScaleLength() or q.ZeroPointLength()):
                qd = dict(scale=q.ScaleAsNumpy().astype(np.float32) if q.ScaleLength() else None,
                          zero_point=q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength() else None,
                          quantized_dimension=q.QuantizedDimension())
            dt = _TTYPE[t.Type()]
            shape = t.ShapeAsNumpy().tolist() if t.ShapeLength() else []
            data = None
            b = buffers[t.Buffer()]
            if b is not None and _NP.get(dt) is not None and len(b):
                data = np.frombuffer(b.tobytes(), _NP[dt]).reshape(shape)
            tensors.append(dict(index=ti, name=t.Name().decode(), shape=shape, dtype=dt, quant=qd,
                                buffer=t.Buffer(), data=data, is_variable=t.IsVariable(),
                                shape_signature=t.ShapeSignatureAsNumpy().tolist() if t.ShapeSignatureLength() else None))
        ops = []
        for oi in range(sg.OperatorsLength()):
            op = sg.Operators(oi)
            on, od = _options(op)
            name, ver, custom = opcodes[op.OpcodeIndex()]
            ops.append(dict(index=oi, op=name, version=ver, custom=custom, options_type=on, options=od,
                            inputs=op.InputsAsNumpy().tolist() if op.InputsLength() else [],
                            outputs=op.OutputsAsNumpy().tolist() if op.OutputsLength() else []))
        subgraphs.append(dict(index=si, name=sg.Name().decode() if sg.Name() else '', tensors=tensors, ops=ops,
                              inputs=sg.InputsAsNumpy().tolist() if sg.InputsLength() else [],
                              outputs=sg.OutputsAsNumpy().tolist() if sg.OutputsLength() else []))
    sigs = []
    for i in range(m.SignatureDefsLength()):
        s = m.SignatureDefs(i)
        sigs.append(dict(key=s.SignatureKey().decode(), subgraph=s.SubgraphIndex(),
                         inputs={s.Inputs(j).Name().decode(): s.Inputs(j).TensorIndex() for j in range(s.InputsLength())},
                         outputs={s.Outputs(j).Name().decode(): s.Outputs(j).TensorIndex() for j in range(s.OutputsLength())}))
    meta = []
    for i in range(m.MetadataLength()):
        md = m.Metadata(i); b = buffers[md.Buffer()]
        meta.append((md.Name().decode(), None if b is None else bytes(b[:64])))
    return dict(version=m.Version(), description=m.Description().decode() if m.Description() else '',
                opcodes=opcodes, subgraphs=subgraphs, signatures=sigs, metadata=meta)
