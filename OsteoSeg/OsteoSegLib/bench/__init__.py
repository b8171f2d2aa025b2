"""The Segment speed benchmark (`osteoseg bench`) and the weights it trains for itself."""
