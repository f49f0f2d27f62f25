"""edgepose.quantize"""
