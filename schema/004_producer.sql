-- GateScope database schema, version 4 (PRAGMA user_version = 4): models that are not Keras.
--
-- runs.model_format is now also 'onnx' (an ONNX graph). keras_version stays NULL for those; the
-- exporter that wrote the file goes here, e.g. 'pytorch 2.13.0 (opset 17)' from the ONNX
-- producer_name and producer_version. Older runs get NULL: Keras runs keep their keras_version.
ALTER TABLE runs ADD COLUMN producer TEXT;  -- what wrote a non-Keras model file, NULL if unknown or Keras
