"""edgetasks core library: settings, topics, frames, brokers and the MQTT bus."""
