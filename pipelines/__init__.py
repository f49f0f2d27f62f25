"""edgepose.pipelines"""
