"""edgepose.jetson"""
