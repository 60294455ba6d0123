"""The conformance zoo: small TensorFlow models of the kinds users bring, built in-process.

Each entry builds a Keras 3 model with a fixed seed and says how to make its inputs. CNNs come
from keras.applications with weights=None at small input sizes; their BatchNormalization moving
statistics are set from one training-mode pass so the outputs are not constant (at init the
moving variance is 1 and the mean 0, which on random weights makes every logit equal). Four models
are trained on data bundled with scikit-learn so that an int8 accuracy drop means something: a
small CNN on the 8x8 digits, an MLP on breast-cancer features, and MobileNetV3Small and
EfficientNetB0 on the digits scaled up to their input size. Those two stand for trained deep CNNs:
with random weights EfficientNetB0's activations grow block after block (logits in the hundreds)
and its fp16 error with them, which trained networks do not do (docs/conversion.md).

Nothing here imports TensorFlow at module level: `samples.py` imports this file inside the
converter and only needs numpy (and scikit-learn for the trained models' data).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MODELS", "SEED", "ZooModel", "build", "by_name", "labelled_data"]

SEED = 0
VOCAB = 1000  # token ids of the text models are in [1, VOCAB)
SEQ = 32  # tokens per text sample
# CNNs trained on digits (random-weight deep CNNs are too chaotic to say anything about fp16)
_DIGITS_SIZE = {"efficientnet_b0": 32, "mobilenet_v3_small": 64, "resnet50": 32, "inception_v3": 75}
WORDS = tuple(f"w{i}" for i in range(200))  # the string model's vocabulary

Inputs = dict[str, np.ndarray]


@dataclass(frozen=True, kw_only=True)
class ZooModel:
    name: str
    family: str  # what the model stands for in the table
    make: Callable[[], Any]  # -> keras.Model (untrained, statistics set)
    sample: Callable[[np.random.Generator, int], Inputs]  # (rng, index) -> one unbatched sample
    save_as: str = "savedmodel"  # or "keras": a .keras file instead of a SavedModel folder
    trained: bool = False  # fitted on bundled data; `labelled_data(name)` gives its held-out set
    dynamic: tuple[int, ...] = field(default_factory=tuple)  # dims the signature leaves open
    notes: str = ""

    @property
    def path(self) -> str:
        return f"models/{self.name}.keras" if self.save_as == "keras" else f"models/{self.name}"


# ---- inputs -----------------------------------------------------------------------------------


def _image(size: int, channels: int = 3, low: float = -1.0, high: float = 1.0, name: str = "image"):
    def sample(rng: np.random.Generator, index: int) -> Inputs:
        return {name: rng.uniform(low, high, (size, size, channels)).astype(np.float32)}

    return sample


def _tokens(dtype: type, name: str = "tokens"):
    def sample(rng: np.random.Generator, index: int) -> Inputs:
        return {name: rng.integers(1, VOCAB, (SEQ,)).astype(dtype)}

    return sample


def _audio(length: int, channels: int, name: str):
    def sample(rng: np.random.Generator, index: int) -> Inputs:
        t = np.arange(length, dtype=np.float32)[:, None] / length
        tone = np.sin(2 * np.pi * rng.uniform(2, 40) * t + rng.uniform(0, 6, (1, channels)))
        return {name: (tone + 0.1 * rng.standard_normal((length, channels))).astype(np.float32)}

    return sample


def _sentence(rng: np.random.Generator, index: int) -> Inputs:
    words = rng.choice(WORDS, size=int(rng.integers(3, 12)))
    return {"text": np.array(" ".join(words), dtype=object)}


def _dynamic_image(rng: np.random.Generator, index: int) -> Inputs:
    height, width = (32, 32) if index % 3 == 0 else (int(rng.integers(24, 64)), 48)
    return {"image": rng.uniform(-1, 1, (height, width, 3)).astype(np.float32)}


def _multi_io(rng: np.random.Generator, index: int) -> Inputs:
    return {
        "image": rng.uniform(-1, 1, (32, 32, 3)).astype(np.float32),
        "features": rng.standard_normal(8).astype(np.float32),
    }


# ---- builders ---------------------------------------------------------------------------------


def _seed() -> Any:
    import keras

    keras.utils.set_random_seed(SEED)
    return keras


def _set_bn_statistics(model: Any, sample: Callable[[np.random.Generator, int], Inputs]) -> None:
    """Moving mean/variance from one training-mode pass (momentum 0) over 16 random inputs."""
    import keras

    batchnorms = [layer for layer in _all_layers(model) if _is_norm(layer, keras)]
    if not batchnorms:
        return
    for layer in batchnorms:
        layer.momentum = 0.0
    rng = np.random.default_rng(SEED + 1)
    items = [sample(rng, 3 * i) for i in range(16)]  # index 3*i: fixed sizes for dynamic models
    batch = {name: np.stack([item[name] for item in items]) for name in items[0]}
    model(batch if len(batch) > 1 else next(iter(batch.values())), training=True)
    for layer in batchnorms:
        layer.momentum = 0.99


def _is_norm(layer: Any, keras: Any) -> bool:
    return isinstance(layer, keras.layers.BatchNormalization)


def _all_layers(model: Any) -> list[Any]:
    layers = []
    for layer in model.layers:
        layers.append(layer)
        if hasattr(layer, "layers"):
            layers.extend(_all_layers(layer))
    return layers


def _backbone(factory: str, size: int, **kwargs: Any) -> tuple[Any, Any]:
    """(keras, a seeded keras.applications `factory` model on size x size x 3 images, 10 classes)."""
    keras = _seed()
    inputs = keras.Input((size, size, 3), name="image")
    backbone = getattr(keras.applications, factory)(
        weights=None, input_shape=(size, size, 3), classes=10, **kwargs
    )
    return keras, keras.Model(inputs, backbone(inputs), name=factory.lower())


def _application(factory: str, size: int, sample, **kwargs: Any) -> Callable[[], Any]:
    def make() -> Any:
        _, model = _backbone(factory, size, **kwargs)
        _set_bn_statistics(model, sample)
        return model

    return make


def _lstm_text() -> Any:
    keras = _seed()
    tokens = keras.Input((SEQ,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB, 32)(tokens)
    x = keras.layers.LSTM(32)(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="probabilities")(x)
    return keras.Model(tokens, outputs, name="lstm_text")


def _bilstm_text() -> Any:
    keras = _seed()
    tokens = keras.Input((SEQ,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(VOCAB, 32)(tokens)
    x = keras.layers.Bidirectional(keras.layers.LSTM(24, return_sequences=True))(x)
    x = keras.layers.GlobalMaxPooling1D()(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="probabilities")(x)
    return keras.Model(tokens, outputs, name="bilstm_text")


def _gru_audio() -> Any:
    keras = _seed()
    frames = keras.Input((64, 16), name="frames")
    x = keras.layers.Conv1D(32, 3, padding="same", activation="relu")(frames)
    x = keras.layers.GRU(32)(x)
    outputs = keras.layers.Dense(6, name="logits")(x)
    return keras.Model(frames, outputs, name="gru_audio")


def _conv1d_audio() -> Any:
    keras = _seed()
    wave = keras.Input((1024, 1), name="waveform")
    x = wave
    for filters in (16, 32, 32, 64):
        x = keras.layers.Conv1D(filters, 9, strides=2, padding="same")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(8, name="logits")(x)
    model = keras.Model(wave, outputs, name="conv1d_audio")
    _set_bn_statistics(model, _audio(1024, 1, "waveform"))
    return model


def _transformer() -> Any:
    """One encoder block over int64 token ids: embeddings, self-attention, GELU feed-forward."""
    keras = _seed()
    tokens = keras.Input((SEQ,), dtype="int64", name="tokens")
    x = keras.layers.Embedding(VOCAB, 64)(tokens)
    positions = keras.layers.Embedding(SEQ, 64)(keras.ops.arange(SEQ))
    x = x + positions
    attended = keras.layers.MultiHeadAttention(num_heads=4, key_dim=16)(x, x)
    x = keras.layers.LayerNormalization()(x + attended)
    hidden = keras.layers.Dense(128, activation="gelu")(x)
    x = keras.layers.LayerNormalization()(x + keras.layers.Dense(64)(hidden))
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    return keras.Model(tokens, outputs, name="transformer")


def _multi_io_model() -> Any:
    """Two inputs, three outputs: an embedding first, then class probabilities and a score."""
    keras = _seed()
    image = keras.Input((32, 32, 3), name="image")
    features = keras.Input((8,), name="features")
    x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(image)
    x = keras.layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    f = keras.layers.Dense(16, activation="relu")(features)
    joint = keras.layers.Concatenate()([x, f])
    embedding = keras.layers.Dense(24, name="embedding")(joint)
    probs = keras.layers.Dense(5, activation="softmax", name="probabilities")(embedding)
    score = keras.layers.Dense(1, name="score")(embedding)
    return keras.Model(
        {"image": image, "features": features},
        {"embedding": embedding, "probabilities": probs, "score": score},
        name="multi_io",
    )


def _dynamic_hw() -> Any:
    keras = _seed()
    image = keras.Input((None, None, 3), name="image")
    x = image
    for filters in (16, 32, 64):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, name="logits")(x)
    model = keras.Model(image, outputs, name="dynamic_hw")
    _set_bn_statistics(model, _dynamic_image)
    return model


def _unet() -> Any:
    keras = _seed()
    image = keras.Input((64, 64, 3), name="image")

    def block(x: Any, filters: int) -> Any:
        x = keras.layers.Conv2D(filters, 3, padding="same")(x)
        x = keras.layers.BatchNormalization()(x)
        return keras.layers.ReLU()(x)

    skips, x = [], image
    for filters in (16, 32, 64):
        x = block(x, filters)
        skips.append(x)
        x = keras.layers.MaxPooling2D()(x)
    x = block(x, 128)
    for filters, skip in zip((64, 32, 16), reversed(skips), strict=True):
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2)(x)
        x = block(keras.layers.Concatenate()([x, skip]), filters)
    mask = keras.layers.Conv2D(3, 1, name="mask")(x)
    model = keras.Model(image, mask, name="unet")
    _set_bn_statistics(model, _image(64))
    return model


def _detector() -> Any:
    """A single-shot head over a 4x4 grid of 3 anchors: boxes, class scores and objectness."""
    keras = _seed()
    image = keras.Input((64, 64, 3), name="image")
    x = image
    for filters in (16, 32, 64, 64):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same")(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    anchors, classes = 4 * 4 * 3, 5
    boxes = keras.layers.Reshape((anchors, 4))(keras.layers.Conv2D(3 * 4, 1)(x))
    boxes = keras.layers.Activation("sigmoid", name="boxes")(boxes)
    scores = keras.layers.Reshape((anchors, classes))(keras.layers.Conv2D(3 * classes, 1)(x))
    scores = keras.layers.Softmax(name="class_scores")(scores)
    objectness = keras.layers.Reshape((anchors,))(keras.layers.Conv2D(3, 1)(x))
    objectness = keras.layers.Activation("sigmoid", name="objectness")(objectness)
    model = keras.Model(
        image,
        {"boxes": boxes, "class_scores": scores, "objectness": objectness},
        name="detector",
    )
    _set_bn_statistics(model, _image(64))
    return model


def _string_text() -> Any:
    """Raw sentences in: TextVectorization inside the model, then a bag-of-embeddings."""
    keras = _seed()
    text = keras.Input((), dtype="string", name="text")
    vectorize = keras.layers.TextVectorization(
        max_tokens=len(WORDS) + 2, output_sequence_length=16, vocabulary=list(WORDS)
    )
    x = keras.layers.Embedding(len(WORDS) + 2, 16)(vectorize(text))
    x = keras.layers.GlobalAveragePooling1D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    return keras.Model(text, outputs, name="string_text")


def _digits_cnn() -> Any:
    keras = _seed()
    image = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    model = keras.Model(image, outputs, name="digits_cnn")
    x_train, y_train, _, _ = labelled_data("digits_cnn")
    _fit(model, x_train, y_train, epochs=8)
    return model


def _tabular_mlp() -> Any:
    """Raw, unscaled breast-cancer features (0.05 .. 4000); normalisation is inside the model."""
    keras = _seed()
    features = keras.Input((30,), name="features")
    normalize = keras.layers.Normalization()
    x_train, y_train, _, _ = labelled_data("tabular_mlp")
    normalize.adapt(x_train)
    x = keras.layers.Dense(32, activation="relu")(normalize(features))
    x = keras.layers.Dense(16, activation="relu")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="probabilities")(x)
    model = keras.Model(features, outputs, name="tabular_mlp")
    _fit(model, x_train, y_train, epochs=30)
    return model


def _trained_application(name: str, factory: str, *, epochs: int, **kwargs: Any):
    """A keras.applications CNN fitted on the digits images scaled up to size x size x 3.

    Random-weight deep residual CNNs grow their activations block after block (EfficientNetB0's
    logits reach ~450), so fp16 error compounds with depth; a few epochs on real images give the
    moderate logits and clear winners of the trained networks users bring.
    """

    size = _DIGITS_SIZE[name]

    def make() -> Any:
        keras, model = _backbone(factory, size, **kwargs)
        x_train, y_train, _, _ = labelled_data(name)
        batchnorms = [layer for layer in _all_layers(model) if _is_norm(layer, keras)]
        for layer in batchnorms:  # moving statistics that follow a few epochs of training
            layer.momentum = 0.9
        _fit(model, x_train, y_train, epochs=epochs)
        for layer in batchnorms:
            layer.momentum = 0.99
        return model

    return make


def _fit(model: Any, x: np.ndarray, y: np.ndarray, *, epochs: int) -> None:
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0)


def labelled_data(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_held_out, y_held_out) of a trained zoo model, fixed split."""
    from sklearn import datasets

    if name == "digits_cnn":
        bunch = datasets.load_digits()
        x, held = (bunch.images / 16.0).astype(np.float32)[..., None], 300
    elif name in _DIGITS_SIZE:  # 0..255 RGB, each digit pixel a block: the CNNs' own input range
        bunch = datasets.load_digits()
        size = _DIGITS_SIZE[name]
        images = np.kron(bunch.images, np.ones((size // 8, size // 8))) * (255.0 / 16.0)
        pad = size - images.shape[1]  # 75 = 9 x 8 + 3: black border to the input size
        border = (pad // 2, pad - pad // 2)
        images = np.pad(images, ((0, 0), border, border))
        x, held = np.repeat(images[..., None], 3, axis=-1).astype(np.float32), 300
    elif name == "tabular_mlp":
        bunch = datasets.load_breast_cancer()
        x, held = bunch.data.astype(np.float32), 114
    else:
        raise KeyError(f"{name} is not trained on bundled data")
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    x, y = x[order], y[order]
    return x[held:], y[held:], x[:held], y[:held]


def _held_out_sample(name: str, input_name: str):
    def sample(rng: np.random.Generator, index: int) -> Inputs:
        x_train, _, _, _ = labelled_data(name)
        return {input_name: x_train[index % len(x_train)]}

    return sample


MODELS: tuple[ZooModel, ...] = (
    ZooModel(
        name="mobilenet_v2",
        family="CNN: MobileNetV2 (alpha 0.35, 64x64)",
        make=_application("MobileNetV2", 64, _image(64), alpha=0.35),
        sample=_image(64),
    ),
    ZooModel(
        name="mobilenet_v3_small",
        family="CNN: MobileNetV3Small (alpha 0.75, 64x64, hard-swish, SE), trained on digits",
        make=_trained_application(
            "mobilenet_v3_small",
            "MobileNetV3Small",
            epochs=3,  # 97% held-out accuracy
            alpha=0.75,
            dropout_rate=0.0,
        ),
        sample=_held_out_sample("mobilenet_v3_small", "image"),
        trained=True,
    ),
    ZooModel(
        name="resnet50",
        family="CNN: ResNet50 (32x32), trained on digits",
        make=_trained_application("resnet50", "ResNet50", epochs=5),  # 97% held out; 192 s
        sample=_held_out_sample("resnet50", "image"),
        trained=True,
    ),
    ZooModel(
        name="efficientnet_b0",
        family="CNN: EfficientNetB0 (32x32, swish, SE), trained on digits",
        make=_trained_application(
            "efficientnet_b0",
            "EfficientNetB0",
            epochs=8,  # 88.7%; at 3 (77%) onnx fp16 failed
        ),
        sample=_held_out_sample("efficientnet_b0", "image"),
        trained=True,
    ),
    ZooModel(
        name="densenet121",
        family="CNN: DenseNet121 (32x32)",
        make=_application("DenseNet121", 32, _image(32)),
        sample=_image(32),
    ),
    ZooModel(
        name="inception_v3",
        family="CNN: InceptionV3 (75x75), trained on digits",
        make=_trained_application("inception_v3", "InceptionV3", epochs=5),
        sample=_held_out_sample("inception_v3", "image"),
        trained=True,
    ),
    ZooModel(
        name="convnext_tiny",
        family="CNN: ConvNeXtTiny (32x32, LayerNorm, GELU)",
        make=_application("ConvNeXtTiny", 32, _image(32, low=0, high=255)),
        sample=_image(32, low=0, high=255),
    ),
    ZooModel(
        name="nasnet_mobile",
        family="CNN: NASNetMobile (32x32)",
        make=_application("NASNetMobile", 32, _image(32)),
        sample=_image(32),
    ),
    ZooModel(
        name="lstm_text",
        family="RNN: Embedding + LSTM, int32 token ids",
        make=_lstm_text,
        sample=_tokens(np.int32),
    ),
    ZooModel(
        name="bilstm_text",
        family="RNN: Embedding + Bidirectional LSTM, int32 token ids",
        make=_bilstm_text,
        sample=_tokens(np.int32),
    ),
    ZooModel(
        name="gru_audio",
        family="RNN: Conv1D + GRU on 64 frames x 16 features",
        make=_gru_audio,
        sample=_audio(64, 16, "frames"),
    ),
    ZooModel(
        name="conv1d_audio",
        family="audio: Conv1D stack on a 1024-sample waveform",
        make=_conv1d_audio,
        sample=_audio(1024, 1, "waveform"),
    ),
    ZooModel(
        name="transformer",
        family="transformer encoder block, int64 token ids, GELU",
        make=_transformer,
        sample=_tokens(np.int64),
    ),
    ZooModel(
        name="multi_io",
        family="two inputs, three outputs (embedding, probabilities, score)",
        make=_multi_io_model,
        sample=_multi_io,
    ),
    ZooModel(
        name="dynamic_hw",
        family="fully convolutional, dynamic H x W",
        make=_dynamic_hw,
        sample=_dynamic_image,
        dynamic=(1, 2),
    ),
    ZooModel(
        name="unet",
        family="U-Net segmentation (64x64, transposed convolutions)",
        make=_unet,
        sample=_image(64),
    ),
    ZooModel(
        name="detector",
        family="detection head: boxes, class scores, objectness",
        make=_detector,
        sample=_image(64),
    ),
    ZooModel(
        name="string_text",
        family="string input: TextVectorization inside the model",
        make=_string_text,
        sample=_sentence,
    ),
    ZooModel(
        name="digits_cnn",
        family="trained CNN on sklearn digits, saved as .keras",
        make=_digits_cnn,
        sample=_held_out_sample("digits_cnn", "image"),
        save_as="keras",
        trained=True,
    ),
    ZooModel(
        name="tabular_mlp",
        family="trained MLP on raw breast-cancer features",
        make=_tabular_mlp,
        sample=_held_out_sample("tabular_mlp", "features"),
        trained=True,
    ),
)


def by_name(name: str) -> ZooModel:
    for model in MODELS:
        if model.name == name:
            return model
    raise KeyError(f"no zoo model {name!r}; the zoo has: {', '.join(m.name for m in MODELS)}")


def build(model: ZooModel, root: Path) -> Path:
    """Build `model` and save it under root (SavedModel folder, or .keras file); return its path."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    target = root / model.path
    target.parent.mkdir(parents=True, exist_ok=True)
    keras_model = model.make()
    if model.save_as == "keras":
        keras_model.save(str(target))
    else:
        keras_model.export(str(target), verbose=False)
    return target
