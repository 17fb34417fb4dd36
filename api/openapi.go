package api

import "github.com/gin-gonic/gin"

// docsRoutes serves the OpenAPI document and its rendered page.
func (s *Server) docsRoutes(r *gin.Engine) {}
